from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager, ServerKernelManager


class SharedClientKernelManager(ServerKernelManager):
    """STUB: replaced by the shared kernel client work."""


class SharedClientMappingKernelManager(AsyncMappingKernelManager):
    """STUB: replaced by the shared kernel client work."""
