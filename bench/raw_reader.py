"""The baseline: a minimal stdlib client that streams a chat completion and writes its text."""

import http.client
import json
import sys
from urllib.parse import urlparse

url = urlparse(sys.argv[1])
conn = http.client.HTTPConnection(url.hostname, url.port)
body = {"model": sys.argv[2], "stream": True, "messages": [{"role": "user", "content": sys.argv[3]}]}
conn.request("POST", url.path + "/chat/completions", json.dumps(body), {"Content-Type": "application/json"})
response = conn.getresponse()
out = sys.stdout
for line in response:
    if line.startswith(b"data: ") and line[6:11] != b"[DONE":
        for choice in json.loads(line[6:]).get("choices") or ():
            text = choice.get("delta", {}).get("content")
            if text:
                out.write(text)
                out.flush()
out.write("\n")
