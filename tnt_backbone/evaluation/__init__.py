from .accuracy import Accuracy, topk_accuracy

__all__ = ['Accuracy', 'topk_accuracy']
