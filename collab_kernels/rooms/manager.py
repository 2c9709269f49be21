from traitlets import Any
from traitlets.config import LoggingConfigurable


class RoomManager(LoggingConfigurable):
    """STUB: replaced by the rooms work."""

    contents_manager = Any()
    event_logger = Any()
    web_settings = Any()

    async def stop(self):
        pass
