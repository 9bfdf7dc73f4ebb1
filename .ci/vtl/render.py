#!/usr/bin/env python3
"""Renders API Gateway mapping templates with a Velocity engine (airspeed, pinned in
requirements.txt beside this file) and API Gateway's variables, for
crates/infra-tests/tests/mapping_templates.rs.

Protocol: a JSON document on stdin, {"jobs": [{"template": str, "body": str,
"params": {"path": {}, "querystring": {}, "header": {}}, "context": {...}}]}; on stdout
{"results": [{"output": str, "status_override": int|null} | {"error": str}]}, one per job, in
order. A job's error never stops the others. Exit code 0 unless the input itself is unusable.

What API Gateway documents, and how it is implemented here (API Gateway Developer Guide,
"Variables for data transformations for API Gateway", the $context, $input and $util tables):
- "$input.body: Returns the raw payload as a string."  -> the request body, unchanged.
- "$input.json(x): This function evaluates a JSONPath expression and returns the results as a
  JSON string."  -> the value at x, re-serialised. How numbers and whitespace come out is NOT
  documented; this renderer makes the same pessimistic assumption as the twin
  (crates/api/src/gateway_json.rs): compact, members in input order, integers unchanged, every
  other number as Java's Double.toString of the nearest double, strings re-escaped as JSON.
  That is an assumption, not verified against AWS.
- "$input.path(x): Takes a JSONPath expression string (x) and returns an object representation of
  the result. This allows you to access and manipulate elements of the payload natively in
  Apache Velocity Template Language (VTL)."  -> plain Python values (dict, list, str, int,
  float, bool, None), which airspeed treats as Velocity treats Java maps, lists and strings.
- "$input.params(): Returns a map of all the request parameters of your API call." and
  "$input.params(x): Returns the value of a method request parameter from the path, query
  string, or header value (in that order) given a parameter name string x."
- JSONPath: only the definite paths the templates need ($, .name, ['name'], [n]); anything else
  is an error, never a guess.
- "$util.escapeJavaScript(): Escapes the characters in a string using JavaScript string rules.
  This function will turn any regular single quotes (') into escaped ones (\\'). However, the
  escaped single quotes are not valid in JSON."  -> Apache Commons Lang 2's
  StringEscapeUtils.escapeJavaScript, which that description matches: \\ " ' / escaped with a
  backslash, \\b \\t \\n \\f \\r, other control characters and everything above U+007E as
  \\uXXXX (upper-case hex, per UTF-16 code unit).
- "$util.base64Encode(): Encodes the data into a base64-encoded string." and base64Decode,
  with the guide's note "Unless otherwise specified, the default character set is UTF-8".
- "$util.urlEncode(): Converts a string into "application/x-www-form-urlencoded" format." and
  urlDecode (java.net.URLEncoder's rules: [A-Za-z0-9.*_-] kept, space as +, %XX upper case).
- "$util.parseJson(): Takes "stringified" JSON and returns an object representation".
- $context: requestId, apiId, stage, httpMethod, resourcePath, path, identity.* from the job
  (defaults below), and responseOverride.status/header, which templates may #set; the status a
  template set is returned as status_override.
"""

import base64
import json
import math
import re
import sys
import urllib.parse
from decimal import Decimal

import airspeed


# Velocity 1.7 (org.apache.velocity.runtime.parser.node.ASTStringLiteral) keeps backslashes in
# string literals as they are: a double-quoted literal only has \uXXXX sequences decoded and ""
# read as ", a single-quoted one only '' read as '. airspeed 0.7.1 instead decodes \\, \n, \t,
# ... as Python would, so `replaceAll("\\'", "'")` (AWS's documented way to undo
# escapeJavaScript's \' for JSON) would reach the regex as \' (a plain quote) and do nothing.
# The two literal classes are patched to Velocity's rules.
_UNICODE_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")


def _parse_single_quoted(self):
    (value,) = self.identity_match(self.STRING)
    self.value = value.replace("''", "'")


def _parse_double_quoted(self):
    (value,) = self.identity_match(self.STRING)
    value = _UNICODE_ESCAPE.sub(lambda match: chr(int(match.group(1), 16)), value)
    self.value = value.replace('""', '"')
    self.block = airspeed.Block(self.filename, self.value, 0)


airspeed.StringLiteral.STRING = re.compile(r"'((?:''|[^'])*)'", re.S)
airspeed.StringLiteral.parse = _parse_single_quoted
airspeed.InterpolatedStringLiteral.STRING = re.compile(r'"((?:\\.|""|[^"\\])*)"', re.S)
airspeed.InterpolatedStringLiteral.parse = _parse_double_quoted


class RawInt(str):
    """An integer token exactly as the client wrote it."""


class RawFloat(str):
    """A number token with a fraction or an exponent, as the client wrote it."""


def _refuse_constant(name):
    raise ValueError(f"not JSON: {name}")


def parse_tokens(text):
    """The JSON value with its numbers kept as their tokens (for $input.json)."""
    return json.loads(
        text, parse_int=RawInt, parse_float=RawFloat, parse_constant=_refuse_constant
    )


def java_double_to_string(value):
    """Java's Double.toString (JDK 19 and later: shortest digits that read back)."""
    if math.isnan(value) or math.isinf(value):
        # JSON has no such number; what AWS would print is unknown: refuse.
        raise ValueError(f"{value} is not a finite double")
    if value == 0.0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    sign = "-" if value < 0 else ""
    # repr() is the shortest round-trip form; Decimal splits it into digits and exponent.
    shortest = Decimal(repr(abs(value))).normalize().as_tuple()
    digits = "".join(str(d) for d in shortest.digits)
    exponent = shortest.exponent + len(digits) - 1  # scientific: d.ddd x 10^exponent
    if 1e-3 <= abs(value) < 1e7:
        point = exponent + 1  # digits before the decimal point
        if point <= 0:
            whole, fraction = "0", "0" * (-point) + digits
        elif point >= len(digits):
            whole, fraction = digits + "0" * (point - len(digits)), ""
        else:
            whole, fraction = digits[:point], digits[point:]
        return f"{sign}{whole}.{fraction or '0'}"
    return f"{sign}{digits[0]}.{digits[1:] or '0'}E{exponent}"


def gateway_json(value):
    """A token tree (parse_tokens) as $input.json prints it, under the documented assumption."""
    if isinstance(value, dict):
        return "{" + ",".join(
            gateway_json(key) + ":" + gateway_json(item) for key, item in value.items()
        ) + "}"
    if isinstance(value, list):
        return "[" + ",".join(gateway_json(item) for item in value) + "]"
    if isinstance(value, RawInt):
        return str.__str__(value)
    if isinstance(value, RawFloat):
        return java_double_to_string(float(value))
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    raise TypeError(f"unexpected JSON value {value!r}")


_STEP = re.compile(r"\.([A-Za-z_$][A-Za-z0-9_$-]*)|\[(\d+)\]|\['([^']*)'\]|\[\"([^\"]*)\"\]")


def json_path(document, path):
    """The value at a definite JSONPath, or None when a member or index is missing."""
    if not isinstance(path, str) or not path.startswith("$"):
        raise ValueError(f"unsupported JSONPath {path!r}")
    value, position = document, 1
    while position < len(path):
        step = _STEP.match(path, position)
        if not step:
            raise ValueError(f"unsupported JSONPath {path!r} at {position}")
        position = step.end()
        name, index = step.group(1) or step.group(3) or step.group(4), step.group(2)
        if index is not None:
            if not isinstance(value, list) or int(index) >= len(value):
                return None
            value = value[int(index)]
        else:
            if not isinstance(value, dict) or name not in value:
                return None
            value = value[name]
    return value


def untoken(value):
    """A token tree as plain Python values (for $input.path)."""
    if isinstance(value, dict):
        return {key: untoken(item) for key, item in value.items()}
    if isinstance(value, list):
        return [untoken(item) for item in value]
    if isinstance(value, RawInt):
        return int(value)
    if isinstance(value, RawFloat):
        return float(value)
    return value


class Input:
    """$input."""

    def __init__(self, body, params):
        self.body = body
        self._params = {
            "path": dict(params.get("path", {})),
            "querystring": dict(params.get("querystring", {})),
            "header": dict(params.get("header", {})),
        }
        self._tokens = None

    def _document(self):
        if self._tokens is None:
            self._tokens = parse_tokens(self.body)
        return self._tokens

    def json(self, path):
        return gateway_json(json_path(self._document(), path))

    def path(self, path):
        return untoken(json_path(self._document(), path))

    def params(self, name=None):
        if name is None:
            return self._params
        for kind in ("path", "querystring", "header"):
            if name in self._params[kind]:
                return self._params[kind][name]
        return ""


def escape_javascript(text):
    """Apache Commons Lang 2 StringEscapeUtils.escapeJavaScript (per UTF-16 code unit)."""
    if text is None:
        return None
    text = str(text)
    out = []
    units = text.encode("utf-16-be", "surrogatepass")
    for i in range(0, len(units), 2):
        code = (units[i] << 8) | units[i + 1]
        char = chr(code) if not 0xD800 <= code <= 0xDFFF else None
        if code > 0x7F:
            out.append("\\u%04X" % code)
        elif code < 32:
            short = {8: "\\b", 9: "\\t", 10: "\\n", 12: "\\f", 13: "\\r"}.get(code)
            out.append(short or "\\u%04X" % code)
        elif char in "'\"\\/":
            out.append("\\" + char)
        else:
            out.append(char)
    return "".join(out)


def url_encode(text):
    """java.net.URLEncoder.encode(text, "UTF-8")."""
    out = []
    for byte in str(text).encode("utf-8"):
        char = chr(byte)
        if char.isascii() and (char.isalnum() or char in ".-*_"):
            out.append(char)
        elif char == " ":
            out.append("+")
        else:
            out.append("%%%02X" % byte)
    return "".join(out)


class Util:
    """$util."""

    def escapeJavaScript(self, text):  # noqa: N802 (API Gateway's name)
        return escape_javascript(text)

    def base64Encode(self, text):  # noqa: N802
        return base64.b64encode(str(text).encode("utf-8")).decode("ascii")

    def base64Decode(self, text):  # noqa: N802
        return base64.b64decode(str(text), validate=True).decode("utf-8")

    def urlEncode(self, text):  # noqa: N802
        return url_encode(text)

    def urlDecode(self, text):  # noqa: N802
        return urllib.parse.unquote_plus(str(text), encoding="utf-8", errors="strict")

    def parseJson(self, text):  # noqa: N802
        return untoken(parse_tokens(str(text)))


def context(overrides):
    """$context: the job's values over neutral defaults."""
    value = {
        "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
        "extendedRequestId": "c6af9ac67b6111e6",
        "accountId": "123456789012",
        "apiId": "abcd123456",
        "stage": "prod",
        "httpMethod": "POST",
        "resourcePath": "/",
        "path": "/prod/",
        "protocol": "HTTP/1.1",
        "requestTime": "08/Jun/2024:12:00:00 +0000",
        "requestTimeEpoch": 1717848000000,
        "identity": {"sourceIp": "192.0.2.1", "apiKey": "", "apiKeyId": "", "userAgent": ""},
    }
    value.update(overrides)
    value["responseOverride"] = {"status": None, "header": {}}
    return value


def render(job):
    try:
        namespace = {
            "input": Input(job.get("body", ""), job.get("params", {})),
            "util": Util(),
            "context": context(job.get("context", {})),
        }
        output = airspeed.Template(job["template"]).merge(namespace)
        status = namespace["context"]["responseOverride"]["status"]
        return {"output": output, "status_override": status}
    except Exception as error:  # one job's failure is reported, not fatal
        return {"error": f"{type(error).__name__}: {error}"}


def main():
    request = json.load(sys.stdin)
    results = [render(job) for job in request["jobs"]]
    json.dump({"results": results}, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
