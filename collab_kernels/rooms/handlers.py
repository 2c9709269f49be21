default_handlers = []
