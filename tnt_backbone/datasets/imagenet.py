"""ImageNet-layout classification dataset: class folders, optionally with a list file."""
import os
import os.path as osp

from mmengine.dataset import BaseDataset

from ..registry import DATASETS

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif', '.tiff', '.webp')


def is_image_file(name):
    return name.lower().endswith(IMG_EXTENSIONS)


def class_folders(root):
    """Sorted names of the sub-folders of ``root`` (the class names of an ImageNet split)."""
    return sorted(e.name for e in os.scandir(root) if e.is_dir())


def has_images(folder):
    """Whether any image file lies below ``folder`` (stops at the first)."""
    return any(is_image_file(name) for _, _, names in os.walk(folder, followlinks=True)
               for name in names)


def images_under(folder):
    """Sorted paths, relative to ``folder``, of every image file below it."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames.sort()
        rel = osp.relpath(dirpath, folder)
        found += [name if rel == '.' else osp.join(rel, name)
                  for name in sorted(filenames) if is_image_file(name)]
    return found


@DATASETS.register_module()
class ImageNet(BaseDataset):
    """An ImageNet-style dataset: ``{img_path, gt_label}`` samples.

    Layout (``data_root``)::

        train/<class>/<image>.JPEG      val/<class>/<image>.JPEG (or a flat val/)
        meta/train.txt                  meta/val.txt: lines "relative/path.JPEG label"

    With ``ann_file`` each line names an image relative to ``data_prefix`` and its integer label.
    Without it every image below ``data_prefix/<class>/`` is read, labelled with the index of
    ``<class>`` among the sorted class folders. Class names come from ``metainfo['classes']``, else
    from the sorted class folders of ``data_prefix`` (a flat folder leaves them unnamed).

    Args:
        ann_file (str): The list file, relative to ``data_root``; '' reads the class folders.
            Defaults to ''.
        data_prefix (str | dict): The image folder relative to ``data_root`` (or
            ``dict(img_path=...)``). Defaults to ''.
        check_files (bool): Check once, at start, that every listed image exists, so that a stale
            list fails in seconds, not hours into training (one ``stat`` per image). Defaults to
            True.
        **kwargs: :class:`mmengine.dataset.BaseDataset`'s (``data_root``, ``pipeline``,
            ``metainfo``, ``test_mode``, ``indices``, ...).
    """

    def __init__(self, ann_file='', data_prefix='', check_files=True, **kwargs):
        if isinstance(data_prefix, str):
            data_prefix = dict(img_path=data_prefix)
        self.check_files = check_files
        super().__init__(ann_file=ann_file, data_prefix=data_prefix, **kwargs)

    def load_data_list(self):
        img_dir = self.data_prefix['img_path']
        if not osp.isdir(img_dir):
            raise FileNotFoundError(f'image folder not found: {img_dir}')
        classes = self._metainfo.get('classes')
        if classes is None:
            classes = class_folders(img_dir) or None
            self._metainfo['classes'] = tuple(classes) if classes else None
        if self.ann_file:
            return self._load_list(img_dir, self._metainfo['classes'])
        return self._load_folders(img_dir, classes)

    def _load_folders(self, img_dir, classes):
        if not classes:
            raise ValueError(f'{img_dir} has no class folders; give ann_file for a flat folder')
        data_list = []
        for label, name in enumerate(classes):
            folder = osp.join(img_dir, name)
            if not osp.isdir(folder):
                raise FileNotFoundError(f'class folder not found: {folder}')
            images = images_under(folder)
            if not images:
                raise ValueError(f'class folder {folder} has no images '
                                 f'(looked for {", ".join(IMG_EXTENSIONS)})')
            data_list += [dict(img_path=osp.join(folder, f), gt_label=label) for f in images]
        return data_list

    def _load_list(self, img_dir, classes):
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(f'annotation file not found: {self.ann_file}')
        if classes:
            for name in classes:  # a class folder without images is a broken extraction
                folder = osp.join(img_dir, name)
                if osp.isdir(folder) and not has_images(folder):
                    raise ValueError(f'class folder {folder} has no images')
        data_list = []
        with open(self.ann_file) as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                where = f'{self.ann_file}, line {lineno}'
                parts = line.strip().rsplit(maxsplit=1)
                if len(parts) != 2 or not parts[1].lstrip('-').isdigit():
                    raise ValueError(f'{where}: expected "relative/path label", got {line!r}')
                path, label = osp.join(img_dir, parts[0]), int(parts[1])
                if label < 0 or (classes and label >= len(classes)):
                    raise ValueError(f'{where}: label {label} outside the '
                                     f'{len(classes) if classes else "known"} classes')
                if self.check_files and not osp.isfile(path):
                    raise FileNotFoundError(f'{where}: image file not found: {path}')
                data_list.append(dict(img_path=path, gt_label=label))
        if not data_list:
            raise ValueError(f'annotation file {self.ann_file} lists no images')
        return data_list
