#!/usr/bin/env python3
"""Opens a page in headless Chromium (Debian's chromium-headless-shell) at a given window
size, the way a person's browser lays it out, and reports what the tests check: the page's
width against the window's (horizontal overflow), the elements that stick out, the order of
the status page's cards, the DOM as rendered; and saves a full-page screenshot.

Speaks the DevTools protocol over --remote-debugging-pipe (file descriptors 3 and 4, JSON
messages ending in NUL): standard library only.

    browser.py URL WIDTH HEIGHT MOBILE(0|1) SCREENSHOT.png    # prints one JSON object

With AUTHPROBE_BROWSER_FORMS set (a JSON list of {"fill": {NAME: VALUE}, "check": [NAME]}),
each entry fills the page's form as a person would (values set on the inputs by name,
checkboxes ticked), submits it with its button, and waits for the next page: the output is
then {"pages": [the first page's report, one report per submission]}. The values come from
the environment, never the command line.
"""

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile

REPORT = r"""JSON.stringify({
  scrollWidth: document.documentElement.scrollWidth,
  clientWidth: document.documentElement.clientWidth,
  scrollHeight: document.documentElement.scrollHeight,
  sticking_out: [...document.querySelectorAll('body *')]
    .filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 0.5)
    .slice(0, 10).map(e => e.tagName + (e.className ? '.' + e.className : '')),
  cards: [...document.querySelectorAll('article')].map(a => ({probe: a.dataset.probe, status: a.className})),
  text: document.body.innerText,
  url: location.href,
  html: document.documentElement.outerHTML,
})"""


class Browser:
    def __init__(self):
        binary = shutil.which("chromium-headless-shell") or shutil.which("chromium")
        if binary is None:
            sys.exit("chromium-headless-shell is not installed (scripts/test.sh installs it)")
        # Above the numbers the child needs (3 and 4), so that moving them there clobbers
        # nothing; the child closes every other descriptor itself.
        pipes = [*os.pipe(), *os.pipe()]
        ends = [os.dup2(fd, 200 + i) for i, fd in enumerate(pipes)]
        for fd in pipes:
            os.close(fd)
        to_chrome_r, self.to_chrome, self.from_chrome, from_chrome_w = ends

        def fds():
            os.dup2(to_chrome_r, 3)
            os.dup2(from_chrome_w, 4)
            os.closerange(5, 256)

        self.profile = tempfile.mkdtemp(prefix="authprobe-browser-")
        self.proc = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
             "--remote-debugging-pipe", f"--user-data-dir={self.profile}", "about:blank"],
            close_fds=False, preexec_fn=fds,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self.next_id = 0
        self.buffer = b""
        self.events = []

    def read_message(self):
        while b"\0" not in self.buffer:
            chunk = os.read(self.from_chrome, 1 << 16)
            if not chunk:
                sys.exit("chromium closed the DevTools pipe")
            self.buffer += chunk
        raw, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method, params=None, session=None):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.to_chrome, json.dumps(message).encode() + b"\0")
        while True:
            reply = self.read_message()
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    sys.exit(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, name):
        while True:
            for i, event in enumerate(self.events):
                if event.get("method") == name:
                    return self.events.pop(i)
            self.events.append(self.read_message())

    def close(self):
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


def main():
    if len(sys.argv) != 6:
        sys.exit(__doc__)
    url, width, height, mobile, screenshot = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1", sys.argv[5]
    browser = Browser()
    try:
        target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}
        browser.call("Emulation.setDeviceMetricsOverride", metrics, session)
        browser.call("Page.enable", {}, session)
        browser.call("Page.navigate", {"url": url}, session)
        browser.wait_event("Page.loadEventFired")
        value = browser.call("Runtime.evaluate", {"expression": REPORT, "returnByValue": True}, session)
        report = json.loads(value["result"]["value"])
        # The whole page, as tall as it is.
        metrics["height"] = max(height, min(report["scrollHeight"], 6000))
        browser.call("Emulation.setDeviceMetricsOverride", metrics, session)
        shot = browser.call("Page.captureScreenshot", {"format": "png"}, session)
        with open(screenshot, "wb") as f:
            f.write(base64.b64decode(shot["data"]))
        forms = json.loads(os.environ.get("AUTHPROBE_BROWSER_FORMS", "null"))
        if forms is None:
            print(json.dumps(report))
            return
        pages = [report]
        for form in forms:
            fill = f"""(() => {{
              const values = {json.dumps(form.get("fill", {}))};
              for (const [name, value] of Object.entries(values)) {{
                document.querySelector(`[name="${{name}}"]`).value = value;
              }}
              for (const name of {json.dumps(form.get("check", []))}) {{
                document.querySelector(`[name="${{name}}"]`).checked = true;
              }}
              document.querySelector('button[type=submit]').click();
            }})()"""
            browser.call("Runtime.evaluate", {"expression": fill}, session)
            browser.wait_event("Page.loadEventFired")
            value = browser.call("Runtime.evaluate", {"expression": REPORT, "returnByValue": True}, session)
            pages.append(json.loads(value["result"]["value"]))
        print(json.dumps({"pages": pages}))
    finally:
        browser.close()


if __name__ == "__main__":
    main()
