#!/usr/bin/env python3
"""A chat-completions server on loopback for the LLM cache benchmark (llm-cache.sh).

Answers every POST with a real-shaped OpenAI chat-completions body whose decision is
chosen from the request's SHA-256 (long, close, hold, hold), so the same request always
gets the same answer and a run trades. HTTP/1.1 keep-alive, one thread per connection.

    llm_server.py PORT

Python 3 standard library only.
"""

import hashlib
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ACTIONS = ["long", "close", "hold", "hold"]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body are two writes: without TCP_NODELAY, Nagle's algorithm and the
    # client's delayed ACK hold every answer back about 40 ms.
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        action = ACTIONS[hashlib.sha256(body).digest()[0] % len(ACTIONS)]
        decision = {"action": action, "size_pct": 0.5, "confidence": 0.7, "reason": f"bench {action}"}
        answer = {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "model": "bench",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": json.dumps(decision)}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 600, "completion_tokens": 40, "total_tokens": 640},
        }
        out = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
