"""Gradients through a model in eval mode, on any device.

The approximate steps (SRUGA, SCIF, Kookmin, Fanchuan) take gradients with the model in eval
mode, so that dropout does not make two passes over the same batch differ. On CUDA, cuDNN's RNN
kernels refuse that: GRU4Rec's backward fails with ``cudnn RNN backward can only be called in
training mode`` (found by running the test suite on an H200, ``benchmarks/cuda_check.sh``).
PyTorch's own RNN kernels compute the same function in either mode, so cuDNN is switched off
while such a step runs; its other settings are kept. On the CPU this changes nothing.
"""
from contextlib import contextmanager
from typing import Iterator

import torch


@contextmanager
def eval_mode_gradients() -> Iterator[None]:
    """Context manager (and decorator) under which eval-mode models can be differentiated."""
    cudnn = torch.backends.cudnn
    with cudnn.flags(enabled=False, benchmark=cudnn.benchmark, deterministic=cudnn.deterministic,
                     allow_tf32=cudnn.allow_tf32):
        yield
