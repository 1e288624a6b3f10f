"""Weights from wherever a user has them: file formats, training checkpoints with EMA, http(s)
URLs with the sha256 name suffix (served from 127.0.0.1 by the test), list init_cfg, and the
errors for everything that would leave TNT weights unloaded."""
import functools
import hashlib
import http.server
import pickle
import socket
import threading

import pytest
import torch
from mmengine.runner import load_checkpoint

from tnt_backbone.models import TNT

from test_reference_parity import ARCH, FIXTURES

IMG = FIXTURES['img_size']
TIMM = FIXTURES['timm_v2']


def tnt(init_cfg, **kwargs):
    model = TNT(arch=ARCH, img_size=IMG, out_type='cls_token', out_indices=(-1,),
                init_cfg=init_cfg, **kwargs)
    model.init_weights()
    return model.eval()


def features(model):
    with torch.no_grad():
        return model(TIMM['input'])[0]


def pretrained(checkpoint, **kwargs):
    return features(tnt(dict(type='Pretrained', checkpoint=str(checkpoint), **kwargs)))


@pytest.fixture(scope='module')
def reference(tmp_path_factory):
    """Features from the plain local .pth, which the other tests already check against timm."""
    path = tmp_path_factory.mktemp('ref') / 'timm.pth'
    torch.save(TIMM['state_dict'], path)
    out = pretrained(path)
    assert (out - TIMM['cls_feature']).abs().max() < 1e-5
    return out


def assert_parity(out, reference):
    assert (out - reference).abs().max() < 1e-5


def perturbed(sd):
    return {k: v + 0.5 for k, v in sd.items()}


# -------------------------------------------------------------------------- local files
@pytest.mark.parametrize('name', ['tnt.pth.tar', 'pytorch_model.bin', 'tnt.pt'])
def test_pickle_formats_load_alike(tmp_path, reference, name):
    torch.save({'state_dict': TIMM['state_dict']}, tmp_path / name)
    assert_parity(pretrained(tmp_path / name), reference)


def test_timm_safetensors_loads(tmp_path, reference, monkeypatch):
    from safetensors.torch import save_file
    path = tmp_path / 'model.safetensors'  # as timm / Hugging Face store it
    save_file({k: v.contiguous() for k, v in TIMM['state_dict'].items()}, str(path))

    def torch_load_before_2_13(*args, **kwargs):  # it could not read safetensors files
        raise pickle.UnpicklingError('Weights only load failed: Unsupported operand 80')

    monkeypatch.setattr(torch, 'load', torch_load_before_2_13)
    assert_parity(pretrained(path), reference)


def test_safetensors_of_another_model_is_an_error(tmp_path):
    from safetensors.torch import save_file
    path = tmp_path / 'model.safetensors'
    save_file({'conv1.weight': torch.zeros(2, 3, 7, 7)}, str(path))
    with pytest.raises(ValueError, match=f'{path}: not a TNT checkpoint'):
        pretrained(path)


def test_unsupported_extension_is_an_error(tmp_path):
    path = tmp_path / 'tnt.onnx'
    path.write_bytes(b'not weights')
    with pytest.raises(ValueError, match=r'unsupported checkpoint file type: .*tnt\.onnx'):
        pretrained(path)


def test_ema_weights_are_preferred_and_selectable(tmp_path, reference):
    path = tmp_path / 'train.pth.tar'  # timm's training checkpoint: both copies
    torch.save({'state_dict': perturbed(TIMM['state_dict']),
                'state_dict_ema': TIMM['state_dict'], 'epoch': 300}, path)
    assert_parity(pretrained(path), reference)
    plain = pretrained(path, ema=False)
    assert (plain - reference).abs().max() > 1e-2  # really the other copy
    torch.save({'model': perturbed(TIMM['state_dict']), 'model_ema': TIMM['state_dict']},
               path)  # the official release's names
    assert_parity(pretrained(path), reference)


def test_every_format_stays_weights_only(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ('code ran',))

    for name in ('evil.pth', 'evil.bin', 'evil.pth.tar'):
        with open(tmp_path / name, 'wb') as f:
            torch.save({'state_dict': TIMM['state_dict'], 'x': Evil()}, f,
                       pickle_protocol=pickle.HIGHEST_PROTOCOL)
        with pytest.raises(RuntimeError, match='cannot load checkpoint .* safely'):
            pretrained(tmp_path / name)


def test_list_init_cfg_converts_like_the_dict_form(tmp_path, reference):
    path = tmp_path / 'timm.pth'
    torch.save(TIMM['state_dict'], path)
    model = tnt([dict(type='Constant', layer='Linear', val=3.),
                 dict(type='Pretrained', checkpoint=str(path))])
    assert_parity(features(model), reference)
    with pytest.raises(ValueError, match='2 Pretrained entries'):
        tnt([dict(type='Pretrained', checkpoint=str(path))] * 2)


def test_unconverted_paths_are_errors(tmp_path):
    """mmengine's own loading (load_from, Pretrained on a whole model) does not convert keys:
    a foreign TNT file there is an error naming the file and the fix."""
    path = tmp_path / 'timm.pth'
    torch.save(TIMM['state_dict'], path)
    model = TNT(arch=ARCH, img_size=IMG, out_type='cls_token', out_indices=(-1,))
    with pytest.raises(ValueError, match=f'{path} holds timm-format TNT weights.*tnt2mm.py'):
        load_checkpoint(model, str(path))


# ---------------------------------------------------------------------------------- URLs
@pytest.fixture
def server(tmp_path, monkeypatch):
    """(folder, base URL) of an HTTP server on 127.0.0.1; torch hub's cache in tmp_path."""
    hub = tmp_path / 'hub'
    monkeypatch.setattr(torch.hub, '_hub_dir', str(hub))
    folder = tmp_path / 'www'
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield folder, f'http://127.0.0.1:{httpd.server_address[1]}', hub / 'checkpoints'
    httpd.shutdown()
    httpd.server_close()


def serve(folder, stem, ext, state_dict, digest=None):
    tmp = folder / f'tmp{ext}'
    torch.save(state_dict, tmp)
    sha = hashlib.sha256(tmp.read_bytes()).hexdigest()
    name = f'{stem}-{(digest or sha)[:8]}{ext}'
    tmp.rename(folder / name)
    return name


def test_url_with_right_hash_downloads_once(server, reference):
    folder, url, cache = server
    name = serve(folder, 'tnt_ti_patch16_224', '.pth.tar', {'state_dict_ema': TIMM['state_dict']})
    assert_parity(pretrained(f'{url}/{name}'), reference)
    assert (cache / name).is_file()
    (folder / name).unlink()  # the second load reads the cache
    assert_parity(pretrained(f'{url}/{name}'), reference)


def test_url_with_wrong_hash_is_an_error_and_not_cached(server):
    folder, url, cache = server
    name = serve(folder, 'tnt', '.pth', TIMM['state_dict'], digest='0123abcd')
    with pytest.raises(ValueError, match='sha256 mismatch for .*0123abcd'):
        pretrained(f'{url}/{name}')
    assert not (cache / name).exists()


def test_tampered_cached_file_is_not_used(server):
    folder, url, cache = server
    name = serve(folder, 'tnt', '.pth', TIMM['state_dict'])
    pretrained(f'{url}/{name}')
    torch.save(perturbed(TIMM['state_dict']), cache / name)
    with pytest.raises(ValueError, match='sha256 mismatch'):
        pretrained(f'{url}/{name}')


def test_server_down_names_the_url(server):
    _, url, _ = server
    missing = f'{url}/nothing-0123abcd.pth'
    with pytest.raises(ConnectionError, match=f'cannot download {missing}.*offline'):
        pretrained(missing)
    dead = dead_url()
    with pytest.raises(ConnectionError, match=f'cannot download {dead}.*offline'):
        pretrained(dead)


def dead_url():
    """A URL on a 127.0.0.1 port that nothing listens on."""
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return f'http://127.0.0.1:{port}/tnt.pth'


def test_load_from_an_url_goes_through_the_same_loader(server):
    """mmengine's ``load_from`` path (CheckpointLoader's http scheme) with our converted file."""
    folder, url, _ = server
    source = TNT(arch=ARCH, img_size=IMG, out_type='cls_token', out_indices=(-1,))
    name = serve(folder, 'det', '.pth', {'state_dict': {f'backbone.{k}': v for k, v in
                                                        source.state_dict().items()}})
    wrapper = torch.nn.Module()
    wrapper.backbone = TNT(arch=ARCH, img_size=IMG, out_type='cls_token', out_indices=(-1,))
    load_checkpoint(wrapper, f'{url}/{name}')
    for k, v in source.state_dict().items():
        assert torch.equal(wrapper.backbone.state_dict()[k], v), k
    bad = serve(folder, 'det', '.pth', {'state_dict': {}}, digest='0123abcd')
    with pytest.raises(ValueError, match='sha256 mismatch'):
        load_checkpoint(wrapper, f'{url}/{bad}')


def test_converter_tool_reads_an_url(server, load_tool, tmp_path, reference):
    folder, url, _ = server
    name = serve(folder, 'tnt_s_81.5', '.pth.tar', {'model': perturbed(TIMM['state_dict']),
                                                    'model_ema': TIMM['state_dict']})
    dst = tmp_path / 'converted.pth'
    tool = load_tool('model_converters/tnt2mm.py')
    assert tool.convert_file(f'{url}/{name}', str(dst)) == ('timm', 'v2')
    assert_parity(pretrained(dst), reference)  # the EMA copy, converted
    tool.convert_file(f'{url}/{name}', str(dst), overwrite=True, ema=False)
    assert (pretrained(dst) - reference).abs().max() > 1e-2


def test_test_tool_reads_an_url(server, load_tool, random_checkpoint, tmp_path, monkeypatch):
    """tools/test.py takes a checkpoint URL as it takes the file (the same metrics)."""
    from conftest import REPO_ROOT
    config = f'{REPO_ROOT}/configs/segmentation/upernet_tnt-ti-p16_toy-ade20k-128x128.py'
    load_tool('data/make_toy_ade20k.py').make_toy_ade20k(
        str(tmp_path / 'data' / 'toy_ade20k'), 1, 3, 64)
    monkeypatch.chdir(tmp_path)  # the config reads data/toy_ade20k
    ckpt = random_checkpoint(config)
    folder, url, _ = server
    name = serve(folder, 'upernet', '.pth', torch.load(ckpt, weights_only=True))
    test_tool = load_tool('test.py').main
    from_file = test_tool([config, ckpt, '--work-dir', 'work'])
    assert test_tool([config, f'{url}/{name}', '--work-dir', 'work']) == from_file
    bad = serve(folder, 'upernet', '.pth', {'state_dict': {}}, digest='0123abcd')
    with pytest.raises(ValueError, match='sha256 mismatch'):
        test_tool([config, f'{url}/{bad}', '--work-dir', 'work'])
