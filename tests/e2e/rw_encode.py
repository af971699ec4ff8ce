# SPDX-License-Identifier: Apache-2.0
"""Remote-write 1.0 request encoding in pure Python (no protobuf, no snappy
library), for the e2e tests and the PromQL benchmark.

A request is `prometheus.WriteRequest`:

    WriteRequest { repeated TimeSeries timeseries = 1; }
    TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2; }
    Label        { string name = 1; string value = 2; }
    Sample       { double value = 1; int64 timestamp = 2; }

encoded by hand, then wrapped in a snappy *block* (the raw format, not the
framed one) that holds only literal elements: valid snappy that any decoder
accepts, just not compressed.  Literal elements are limited to 2^32 bytes;
we cut them at 64 KiB, which keeps every tag at most 3 bytes.

Stale markers are the NaN with bit pattern 0x7ff0000000000002
(`STALE_NAN`); pass it as a sample value and its exact bits are sent.
"""

import struct

import requests

STALE_NAN_BITS = 0x7FF0000000000002
STALE_NAN = struct.unpack("<d", struct.pack("<Q", STALE_NAN_BITS))[0]


def is_stale_nan(v):
    return struct.pack("<d", v) == struct.pack("<Q", STALE_NAN_BITS)


# --------------------------------------------------------------------------
# protobuf wire format


def _uvarint(n):
    if n < 0:
        n &= (1 << 64) - 1          # int64 fields: two's complement, 10 bytes
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _len_field(field_no, payload):
    return _uvarint(field_no << 3 | 2) + _uvarint(len(payload)) + payload


_SAMPLE_VALUE_TAG = bytes([1 << 3 | 1])     # field 1, wire type 1 (64-bit)
_SAMPLE_TS_TAG = bytes([2 << 3 | 0])        # field 2, wire type 0 (varint)


def encode_sample(value, ts_ms):
    if isinstance(value, (bytes, bytearray)):        # raw 8 bytes (exact bits)
        raw = bytes(value)
    else:
        raw = struct.pack("<d", value)
    return _SAMPLE_VALUE_TAG + raw + _SAMPLE_TS_TAG + _uvarint(int(ts_ms))


def encode_labels(labels):
    """labels: dict or iterable of (name, value); sorted by name on output,
    as the remote-write spec requires."""
    items = sorted(labels.items() if isinstance(labels, dict) else labels)
    out = bytearray()
    for k, v in items:
        out += _len_field(1, _len_field(1, k.encode()) + _len_field(2, v.encode()))
    return bytes(out)


def encode_timeseries(labels, samples):
    """samples: iterable of (ts_ms, value)."""
    body = bytearray(encode_labels(labels))
    for ts, v in samples:
        body += _len_field(2, encode_sample(v, ts))
    return bytes(body)


def encode_write_request(series):
    """series: iterable of (labels, samples)."""
    out = bytearray()
    for labels, samples in series:
        out += _len_field(1, encode_timeseries(labels, samples))
    return bytes(out)


# --------------------------------------------------------------------------
# snappy block with literal elements only

_MAX_LITERAL = 1 << 16


def snappy_literal_block(data):
    out = bytearray(_uvarint(len(data)))      # preamble: uncompressed length
    for off in range(0, len(data), _MAX_LITERAL):
        chunk = data[off:off + _MAX_LITERAL]
        n = len(chunk) - 1
        if n < 60:
            out.append(n << 2)                 # tag 00, length-1 in 6 bits
        elif n < 1 << 8:
            out.append(60 << 2)
            out.append(n)
        else:
            out.append(61 << 2)                # 2 little-endian length bytes
            out += struct.pack("<H", n)
        out += chunk
    return bytes(out)


def snappy_literal_decode(block):
    """Inverse of snappy_literal_block (literal elements only); used by the
    self-check below."""
    pos, length, shift = 0, 0, 0
    while True:
        b = block[pos]
        pos += 1
        length |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            break
    out = bytearray()
    while pos < len(block):
        tag = block[pos]
        pos += 1
        assert tag & 3 == 0, "only literal elements are supported"
        n = tag >> 2
        if n >= 60:
            nb = n - 59
            n = int.from_bytes(block[pos:pos + nb], "little")
            pos += nb
        n += 1
        out += block[pos:pos + n]
        pos += n
    assert len(out) == length
    return bytes(out)


HEADERS = {
    "Content-Type": "application/x-protobuf",
    "Content-Encoding": "snappy",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
    "User-Agent": "bongsu-e2e-rw/1",
}


def build_body(series):
    return snappy_literal_block(encode_write_request(series))


def push(url, series, session=None, timeout=60):
    """POST one remote-write request to URL (…/api/v1/write); returns the
    requests.Response.  Raises AssertionError unless the status is 2xx."""
    s = session or requests
    r = s.post(url, data=build_body(series), headers=HEADERS, timeout=timeout)
    if not 200 <= r.status_code < 300:
        raise AssertionError(f"remote write to {url} -> HTTP {r.status_code}: "
                             f"{r.text[:300]}")
    return r


def push_batches(url, batches, session=None):
    """Push several requests in order (each a list of (labels, samples))."""
    s = session or requests.Session()
    n = 0
    for b in batches:
        if b:
            push(url, b, session=s)
            n += 1
    return n


if __name__ == "__main__":        # tiny self-check
    data = encode_write_request([({"__name__": "x", "a": "b"},
                                  [(1700000000123, 1.5), (1700000015123, STALE_NAN)])])
    for size in (0, 1, 59, 60, 61, 255, 256, 257, 70000, 200000):
        blob = bytes(range(256)) * (size // 256 + 1)
        assert snappy_literal_decode(snappy_literal_block(blob[:size])) == blob[:size]
    assert is_stale_nan(STALE_NAN)
    print("ok", len(data))
