"""A webhook receiver on 127.0.0.1 for tests: answers ``status`` and records each post."""

import http.server
import json
import threading


class Receiver:
    """``with Receiver() as hook:`` - ``hook.url`` to post to, ``hook.posts`` ({path, authorization, body}) after."""

    def __init__(self, status=204):
        self.posts = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers['Content-Length']))
                receiver.posts.append({'path': self.path, 'authorization': self.headers.get('Authorization'),
                                       'body': json.loads(body)})
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.HTTPServer(('127.0.0.1', 0), Handler)
        self.url = 'http://127.0.0.1:%d/hooks/rollback' % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
