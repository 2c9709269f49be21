from traitlets import Any
from traitlets.config import LoggingConfigurable


class ExecutionManager(LoggingConfigurable):
    """STUB: replaced by the execution work."""

    room_manager = Any()
    kernel_manager = Any()
    session_manager = Any()

    async def stop(self):
        pass
