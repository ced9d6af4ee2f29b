"""The command line: serve the stand-in in the foreground, for the pipeline or the benchmark run as processes."""

import argparse
import json
import sys
from pathlib import Path

from utils.stub.modes import validate_mode
from utils.stub.server import StubServer

EPILOG = """\
control endpoints (for a stand-in run as its own process):
  POST /_control/faults          {"kind": "status", "status": 503, "times": 2, "after": 0, "path": null}
                                 (or a list of faults)
  POST /_control/mode            {"cap": 1000, "no_count": true}: only the settings given change
  GET  /_control/mode            the mode now
  POST /_control/after_requests  {"n": 2, "action": "delete_rows", "code": "WHOSIS_000001", "ids": [1, 2]}
                                 {"n": 2, "action": "insert_rows", "code": "WHOSIS_000001", "rows": [...]}
                                 change the data right after the n-th next /api/<CODE> request
  POST /_control/indicators/CODE [rows]: serve these rows for CODE
  POST /_control/reset           clear faults, the request log and pending actions; reset the mode
  GET  /_control/requests        the request log
  GET  /_control/in_flight       {"in_flight": n, "max_in_flight": m}: data requests answered now, the most
                                 at once since start-up or reset

fault kinds and their options (every fault also takes times, after and path):
  status       status (503), retry_after     reset        connection reset mid-body
  truncate     half the body                 empty        an empty 200
  html         an HTML page with status 200  slow         seconds (5), then the answer
  stall        seconds (5) pause mid-body
  drip         seconds (1.0), limit_s (120): the body one byte every `seconds`
  endless      limit_bytes (2 GiB), write_timeout_s (30): rows without end, no Content-Length
  gzip_bomb    inflated (512 MiB): a small gzip body that inflates to `inflated` bytes
  redirect     status (302), location (default: the same URL, a loop)
  error_body   status (500), body (text): a text/plain error body
  empty_value  count (default: the real @odata.count if $count=true; 0; null: none): "value": []

mode settings (for /api/<CODE> data only; default: none, as GHO):
  cap (rows)           at most this many rows an answer, never a nextLink
  ignore_skip (bool)   $skip is ignored
  ignore_keyset (bool) a trailing `Id gt N` bound of $filter is ignored
  ignore_upper_bound (bool)  a trailing `Id le M` bound (after `Id gt N`) is ignored
  no_count (bool)      $count is ignored
  ignore_orderby, ignore_select, ignore_top (bool)  $orderby, $select or $top is ignored
  max_page_size (rows) server paging with @odata.nextLink
  cycle_links (bool)   with max_page_size: the second piece links back to the first
  next_link_base (URL) nextLinks on another base, e.g. http://127.0.0.1:9999/api
  link_style           "absolute" (default) or "relative" nextLinks
  latency (seconds)    every data answer waits this long first (also --latency S)
"""


def parse_generate(values) -> dict:
    """{code: rows} from --generate CODE=ROWS options (raises argparse.ArgumentTypeError)."""
    generated = {}
    for text in values or []:
        code, _, count = text.partition("=")
        if not code or not count.isdigit():
            raise argparse.ArgumentTypeError(f"--generate wants CODE=ROWS, got {text!r}")
        generated[code] = int(count)
    return generated


def parse_generate_many(values) -> dict:
    """{code: rows} from --generate-many N=ROWS options: N indicators MANY_0001 ... of ROWS rows each."""
    generated = {}
    for text in values or []:
        count, _, rows = text.partition("=")
        if not count.isdigit() or not rows.isdigit():
            raise argparse.ArgumentTypeError(f"--generate-many wants N=ROWS, got {text!r}")
        generated.update({many_code(i): int(rows) for i in range(1, int(count) + 1)})
    return generated


def many_code(number) -> str:
    """The code of the `number`-th indicator --generate-many serves (from 1)."""
    return f"MANY_{number:04d}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Serve a stand-in for the WHO GHO OData API on this machine.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 picks a free one)")
    parser.add_argument("--samples", type=Path, default=None, help="sample folder (default ../shared/gho_samples)")
    parser.add_argument("--no-samples", action="store_true", help="serve generated data only")
    parser.add_argument("--generate", action="append", metavar="CODE=ROWS", help="serve a generated indicator")
    parser.add_argument(
        "--generate-many",
        action="append",
        metavar="N=ROWS",
        help="serve N generated indicators MANY_0001 ... MANY_<N> of ROWS rows each",
    )
    parser.add_argument("--max-page-size", type=int, default=None, help="page large answers with @odata.nextLink")
    parser.add_argument(
        "--mode", default=None, metavar="JSON", help="start in this mode, e.g. '{\"cap\": 1000}' (kept by reset)"
    )
    parser.add_argument(
        "--latency",
        type=float,
        default=None,
        metavar="S",
        help="every data answer waits S seconds first (kept by reset)",
    )
    parser.add_argument(
        "--vary-every", type=int, default=0, metavar="K", help="revise every K-th generated row's value (0: none)"
    )
    return parser


def main(argv=None):
    """Serve until interrupted; 1 when the address cannot be listened on, 2 (argparse) for bad options."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        generated = {**parse_generate_many(args.generate_many), **parse_generate(args.generate)}
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    try:
        mode = validate_mode(json.loads(args.mode)) if args.mode else {}
    except (ValueError, TypeError, AttributeError) as exc:
        parser.error(f"--mode wants a JSON object of mode settings: {exc}")
    if args.latency is not None:
        try:
            mode.update(validate_mode({"latency": args.latency}))
        except ValueError as exc:
            parser.error(f"--latency: {exc}")
    try:
        stub = StubServer(
            args.host, args.port, args.samples, generated, use_samples=not args.no_samples, vary_every=args.vary_every
        )
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 1
    stub.set_max_page_size(args.max_page_size)
    stub.set_mode(**mode)
    stub.state.modes.startup = stub.mode
    for code in generated:
        stub.prepare(code)
    source = "samples in " + str(stub.state.library.directory) if stub.state.library.available else "generated data"
    print(f"GHO stand-in serving {len(stub.state.codes())} indicators ({source}) at {stub.base_url}", flush=True)
    try:
        stub.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        stub.httpd.server_close()
    return 0
