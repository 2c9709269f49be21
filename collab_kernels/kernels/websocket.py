from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection


class SharedClientWebsocketConnection(ZMQChannelsWebsocketConnection):
    """STUB: replaced by the shared kernel client work."""
