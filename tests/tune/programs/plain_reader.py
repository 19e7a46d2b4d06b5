"""A tiny GCS client for record tests: ranged media GETs over plain HTTP to the fake GCS
(``STORAGE_EMULATOR_HOST``; without it, to https://storage.googleapis.com through the
``https_proxy`` that ``record --upstream`` sets), once anonymous and once with
``GOOGLE_AUTH_TOKEN_FOR_TESTING``, with query values a shared ledger must not keep. ``sleep``
as argv[2]: then wait (signals)."""

import os
import sys
import time
import urllib.error
import urllib.request

base = os.environ.get("STORAGE_EMULATOR_HOST", "https://storage.googleapis.com").rstrip("/")
bucket, obj = sys.argv[1].split("/", 1)
quoted = urllib.request.quote(obj, safe="")
url = f"{base}/storage/v1/b/{bucket}/o/{quoted}?alt=media&pageToken=SECRETPAGE&upload_id=UP123"
for token in (None, os.environ.get("GOOGLE_AUTH_TOKEN_FOR_TESTING")):
    headers = {"Range": "bytes=0-9"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as r:
            print(len(r.read()), flush=True)
    except urllib.error.HTTPError as exc:
        print(exc.code, flush=True)
if len(sys.argv) > 2 and sys.argv[2] == "sleep":
    print("ready", flush=True)
    time.sleep(120)
