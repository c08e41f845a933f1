"""Party Mode: several agents take turns on one request."""


def run_rounds(agents, max_rounds):
    return [{'round': n, 'agents': list(agents)} for n in range(1, max_rounds + 1)]
