"""The gateway's DATA reader (issue 17): read in pieces, it gives exactly what reading line by
line gives (RFC 5321 §4.5.2 dot-unstuffing, the line and size limits), whatever the peer's
bytes and however the network cuts them, and leaves what follows the final dot in the stream."""

import asyncio
from concurrent.futures import ThreadPoolExecutor

from hypothesis import given, settings
from hypothesis import strategies as st

from mailboxes.smtp_gateway import read_message, read_message_data

LINE_LIMIT = 40
SIZE_LIMIT = 300


async def line_by_line(reader: asyncio.StreamReader, line_limit: int, size_limit: int) -> tuple[bytes, str]:
    """The reference: one line at a time, as aiosmtpd's own DATA reads it."""
    buffer, state, received, in_long_line = bytearray(), "ok", 0, False
    while True:
        try:
            line = await reader.readuntil(b"\r\n")
        except asyncio.LimitOverrunError as exc:
            state = "too_long" if state == "ok" else state
            buffer = bytearray()
            line = await reader.read(exc.consumed)
        if not in_long_line and line == b".\r\n":
            break
        if len(line) > line_limit and state == "ok":
            state, buffer = "too_long", bytearray()
        received += len(line)
        if state == "ok" and received > size_limit:
            state, buffer = "too_much", bytearray()
        if state == "ok":
            buffer += line[1:] if line.startswith(b".") else line
        in_long_line = not line.endswith(b"\r\n")
    return bytes(buffer), state


def run(read, stream: bytes, cuts: list[int]) -> tuple[bytes, str, bytes]:
    async def go():
        reader = asyncio.StreamReader(limit=LINE_LIMIT)
        pieces, start = [], 0
        for cut in sorted(set(cuts)):
            pieces.append(stream[start:cut])
            start = cut
        pieces.append(stream[start:])

        async def feed():
            for piece in pieces:
                reader.feed_data(piece)
                await asyncio.sleep(0)
            reader.feed_eof()

        feeding = asyncio.ensure_future(feed())
        raw, state = await read(reader, LINE_LIMIT, SIZE_LIMIT)
        await feeding
        return raw, state, await reader.read()

    # A loop of its own, in a thread of its own: after the browser tests, Playwright's loop runs
    # in the main thread, where `asyncio.run` refuses to start.
    with ThreadPoolExecutor(max_workers=1) as thread:
        return thread.submit(asyncio.run, go()).result()


lines = st.lists(
    st.one_of(
        st.sampled_from([b"", b".", b"..", b".x", b"fin.", b"a.\r", b"\n.", b"x\n.y", b".\r.", b"\r"]),
        st.binary(max_size=60).map(lambda b: b.replace(b"\r\n", b"")),
    ),
    max_size=12,
)


@settings(max_examples=400, deadline=None)
@given(lines=lines, cuts=st.lists(st.integers(min_value=1, max_value=400), max_size=6))
def test_pieces_give_what_lines_give(lines, cuts):
    message = b"".join(line + b"\r\n" for line in lines)
    stuffed = b"".join((b"." + line if line.startswith(b".") else line) + b"\r\n" for line in lines)
    stream = stuffed + b".\r\nQUIT\r\n"
    expected = run(line_by_line, stream, cuts)
    assert run(read_message_data, stream, cuts) == expected
    if expected[1] == "ok":
        assert expected[0] == message and expected[2] == b"QUIT\r\n"


HEAD = 7


@settings(max_examples=300, deadline=None)
@given(
    lines=lines,
    cuts=st.lists(st.integers(min_value=1, max_value=400), max_size=6),
    keep=st.integers(min_value=0, max_value=320),
)
def test_past_the_keep_limit_only_the_head_is_kept_and_the_rest_is_counted(lines, cuts, keep):
    """A message over what a box takes (`keep_limit`): its first bytes kept, its whole length
    counted, the line and size limits and the next command as without the keep limit."""
    stuffed = b"".join((b"." + line if line.startswith(b".") else line) + b"\r\n" for line in lines)
    stream = stuffed + b".\r\nQUIT\r\n"

    async def keeping(reader, line_limit, size_limit):
        data = await read_message(reader, line_limit, size_limit, keep, HEAD)
        return (data.raw, data.size), data.state

    whole, state, rest = run(read_message_data, stream, cuts)
    (head, size), kept_state, kept_rest = run(keeping, stream, cuts)
    assert kept_rest == rest
    if state != "ok":
        assert (head, kept_state) == (b"", state)
    elif len(stuffed) > keep:
        assert (head, size, kept_state) == (whole[:HEAD], len(whole), "oversize")
    else:
        assert (head, size, kept_state) == (whole, len(whole), "ok")


def test_a_dot_ending_a_line_is_not_the_end_and_the_next_command_stays_unread():
    stream = b"Subject: x\r\n\r\nVoici la fin.\r\n..\r\n...suite\r\n.\r\nMAIL FROM:<a@b.fr>\r\n"
    raw, state, rest = run(read_message_data, stream, [5, 27, 30])
    assert (raw, state, rest) == (
        b"Subject: x\r\n\r\nVoici la fin.\r\n.\r\n..suite\r\n",
        "ok",
        b"MAIL FROM:<a@b.fr>\r\n",
    )


def test_a_crlf_cut_between_two_pieces_ends_its_line():
    """Found by the property above in CI: a line's CR at the end of one piece and its LF at the
    start of the next counted the line on with the next one (a 32-byte line taken for 41)."""
    lines = [b"\r", b"\x00" * 14, b"\x00" * 14, b"\x00" * 30, b"\x00" * 7]
    stream = b"".join(line + b"\r\n" for line in lines) + b".\r\nQUIT\r\n"
    assert run(read_message_data, stream, [68]) == run(line_by_line, stream, [68])
    assert run(read_message_data, stream, [68])[1] == "ok"
