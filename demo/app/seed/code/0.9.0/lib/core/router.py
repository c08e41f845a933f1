"""Routes a request to a single agent."""


def route(request):
    return {'agent': 'single', 'request': request}
