"""Peak memory of tokenizing a large file (target: < 300 MB RSS), many lines or one single line.

    .venv/bin/python benchmarks/bench_tokenize_memory.py [--size-mb 1024] [--path /tmp/speak_1gb.txt]
        [--model DIR] [--keep]
    .venv/bin/python benchmarks/bench_tokenize_memory.py --single-line --size-mb 50 --model DIR

Writes the file by repeating the lines of the shared English corpus (else the embedded one) until it reaches the
size (with --single-line: their text joined by spaces into one line, no newline), runs the command with its output
sent to /dev/null, and polls the child's RSS (children included) with psutil every 10 ms. Prints JSON: size,
seconds, MB/s, peak RSS in MB, and whether it met the 300 MB target.

Many lines: `speak tokenize FILE --format ids`. One line: the streaming API that scans inside a line,
FastSpeakTokenizer.stream_ids over 256K-character pieces (n-gram tokenizers; ids from the token vocabulary the
tokenizer ships), writing every id to /dev/null.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil

from speak.integrations.bench import default_corpus


STREAM_CHILD = """
import os, sys
from speak.tokenizer.fast import FastSpeakTokenizer
tok = FastSpeakTokenizer.from_pretrained(sys.argv[2])
with open(sys.argv[1], encoding="utf-8") as fh, open(os.devnull, "w") as out:
    for ids, ends, line in tok.stream_ids(iter(lambda: fh.read(1 << 18), "")):
        out.write(" ".join(map(str, ids.tolist())))
"""


def make_file(path: Path, size_mb: float, single_line: bool = False) -> int:
    import lzma

    src = default_corpus()
    raw = lzma.open(src, "rb").read() if src.suffix == ".xz" else src.read_bytes()
    if single_line:
        raw = raw.replace(b"\n", b" ")
    elif not raw.endswith(b"\n"):
        raw += b"\n"
    target = int(size_mb * 2**20)
    written = 0
    with open(path, "wb") as fh:
        while written < target:
            chunk = raw[: target - written]
            cut = len(chunk) if single_line else chunk.rfind(b"\n") + 1 or len(chunk)  # whole lines only
            if single_line:  # whole UTF-8 characters only
                while cut < len(chunk) and (chunk[cut] & 0xC0) == 0x80:
                    cut -= 1
            fh.write(chunk[:cut])
            written += cut
    return written


def rss_tree(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=float, default=1024.0)
    ap.add_argument("--path", type=Path, default=Path("/tmp/speak_tokenize_memory.txt"))
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--keep", action="store_true", help="keep the generated file")
    ap.add_argument("--limit-mb", type=float, default=300.0)
    ap.add_argument("--single-line", action="store_true", help="one line of --size-mb, streamed inside the line")
    args = ap.parse_args()

    size = make_file(args.path, args.size_mb, args.single_line)
    speak = Path(sys.executable).with_name("speak")
    if args.single_line:
        if args.model is None:
            ap.error("--single-line needs --model (an n-gram tokenizer directory)")
        cmd = [sys.executable, "-c", STREAM_CHILD, str(args.path), str(args.model)]
    else:
        cmd = [str(speak) if speak.exists() else "speak", "tokenize", str(args.path), "--format", "ids"]
        if args.model is not None:
            cmd += ["--model", str(args.model)]
    peak = 0
    t = time.perf_counter()
    with open(os.devnull, "wb") as sink:
        child = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.PIPE)
        ps = psutil.Process(child.pid)
        while child.poll() is None:
            try:
                peak = max(peak, rss_tree(ps))
            except psutil.NoSuchProcess:
                break
            time.sleep(0.01)
        err = child.stderr.read().decode("utf-8", "replace")
    seconds = time.perf_counter() - t
    if not args.keep:
        args.path.unlink(missing_ok=True)
    out = {"command": " ".join(cmd) if not args.single_line else "stream_ids (--single-line)", "bytes": size, "seconds": seconds, "mb_s": size / seconds / 1e6,
           "peak_rss_mb": peak / 2**20, "limit_mb": args.limit_mb, "ok": child.returncode == 0 and
           peak / 2**20 < args.limit_mb, "returncode": child.returncode}
    if child.returncode != 0:
        out["stderr"] = err[-2000:]
    print(json.dumps(out, indent=2))
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
