"""Routes a request to a single agent, with a timeout."""

TIMEOUT_SECONDS = 30


def route(request):
    return {'agent': 'single', 'request': request, 'timeout': TIMEOUT_SECONDS}
