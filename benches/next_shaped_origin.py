# A Next.js-shaped origin for benches/rss.sh (ORIGIN=next): 1 KiB pages with the head a
# Next.js 15 App Router page sends (see ../shared/research/nextjs.md), each with its own ETag.
# usage: next_shaped_origin.py PORT
import sys, email.utils
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
BODY = (b"<p>next-shaped filler: the quick brown fox jumps over the lazy dog\n" * 16)[:1024]
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        self.send_response_only(200)
        self.send_header("Cache-Control", "s-maxage=3600, stale-while-revalidate=31532400")
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Vary", "rsc, next-router-state-tree, next-router-prefetch, next-router-segment-prefetch")
        self.send_header("X-Powered-By", "Next.js")
        self.send_header("x-nextjs-cache", "HIT")
        self.send_header("x-nextjs-prerender", "1")
        self.send_header("x-nextjs-stale-time", "4294967294")
        self.send_header("ETag", '"%x"' % (hash(self.path) & 0xffffffffff))
        self.send_header("Date", email.utils.formatdate(usegmt=True))
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)
    def log_message(self, *a): pass
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
