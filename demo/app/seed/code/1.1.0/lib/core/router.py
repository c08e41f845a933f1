"""Routes a request to a single agent, or to the party orchestrator when Party Mode is on."""

TIMEOUT_SECONDS = 30


def route(request, party_mode=False):
    if party_mode:
        return {'agent': 'party-orchestrator', 'request': request, 'timeout': TIMEOUT_SECONDS}
    return {'agent': 'single', 'request': request, 'timeout': TIMEOUT_SECONDS}
