"""xbarref.nn: a NumPy DNN engine with hand-written backward passes (float64).

Layers (:mod:`xbarref.nn.layers`)
    Layer, LAYER_KINDS            base class and ``kind -> class`` registry;
                                  ``Layer.from_config(kind, config)`` rebuilds a layer
    Conv2d, Linear                matrix product through the pluggable ``layer.matmul``
    BatchNorm1d, BatchNorm2d      training (batch statistics, running update) / eval
    ReLU, MaxPool2d, AvgPool2d, GlobalAvgPool, Flatten, Add, Dropout, Identity

Matrix-product operators (:mod:`xbarref.nn.ops`)
    MatmulOp                      the interface ``forward(x2d, w2d)``, ``backward(grad_y2d)``
    DigitalMatmul                 exact float64 BLAS product (the default)

Model graph (:mod:`xbarref.nn.graph`)
    Model, Node, INPUT            named nodes in execution order, residual wiring;
                                  ``model(x)``, ``forward``, ``backward``,
                                  ``named_parameters/buffers/grads``, ``layers_of_kind``

Zoo (:mod:`xbarref.nn.zoo`)
    mlp, digits_cnn, fashion_cnn, resnet, resnet20, small_vgg, he_init

Training (:mod:`xbarref.nn.losses`, :mod:`xbarref.nn.optim`, :mod:`xbarref.nn.train`)
    softmax_cross_entropy, log_softmax, softmax
    SGD, Adam, select_parameters  optimizers on ``{name: array}`` dicts (subsets allowed)
    fit, train_epoch, iterate_minibatches, cosine_lr
    run_inference, InferenceResult   accuracy and throughput of a model on a labelled set

Kernels (:mod:`xbarref.nn.warmup`)
    warm_up                       compile the layers' forward kernels once (before worker
                                  processes start)
"""

from xbarref.nn.graph import INPUT, Model, Node
from xbarref.nn.layers import (LAYER_KINDS, Add, AvgPool2d, BatchNorm1d, BatchNorm2d, Conv2d,
                               Dropout, Flatten, GlobalAvgPool, Identity, Layer, Linear,
                               MaxPool2d, ReLU)
from xbarref.nn.losses import log_softmax, softmax, softmax_cross_entropy
from xbarref.nn.ops import DigitalMatmul, MatmulOp
from xbarref.nn.optim import SGD, Adam, select_parameters
from xbarref.nn.train import (InferenceResult, cosine_lr, fit, iterate_minibatches,
                              run_inference, train_epoch)
from xbarref.nn.warmup import warm_up
from xbarref.nn.zoo import digits_cnn, fashion_cnn, he_init, mlp, resnet, resnet20, small_vgg

__all__ = [
    "Layer", "LAYER_KINDS", "Conv2d", "Linear", "BatchNorm1d", "BatchNorm2d", "ReLU",
    "MaxPool2d", "AvgPool2d", "GlobalAvgPool", "Flatten", "Add", "Dropout", "Identity",
    "MatmulOp", "DigitalMatmul", "Model", "Node", "INPUT",
    "mlp", "digits_cnn", "fashion_cnn", "resnet", "resnet20", "small_vgg", "he_init",
    "softmax_cross_entropy", "log_softmax", "softmax", "SGD", "Adam", "select_parameters",
    "fit", "train_epoch", "iterate_minibatches", "cosine_lr", "run_inference", "InferenceResult",
    "warm_up",
]
