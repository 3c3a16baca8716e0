from .autocast_wrapper import CPUAutocastOptimWrapper, cpu_bf16_supported
from .chunked_adan import ChunkedAdan
from .cmid_constructor import CMIDOptimWrapperConstructor

__all__ = ['ChunkedAdan', 'CMIDOptimWrapperConstructor', 'CPUAutocastOptimWrapper',
           'cpu_bf16_supported']
