"""The AGI protocol layer against the session recorded from a real Asterisk 20, and bad input."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.agi import protocol
from callcenter.agi.protocol import (
    AgiProtocolError,
    AgiReply,
    EnvironmentReader,
    ReplyReader,
    decode_read,
    parse_environment,
    parse_replies,
    parse_reply_line,
    quote,
    read_expression,
)
from callcenter.simulator.agi_peer import AgiCallModel, parse_args

DATA = Path(__file__).parents[2] / "data" / "agi"
RAW = (DATA / "agi_session.raw.txt").read_text()
ANNOTATED = (DATA / "agi_session.txt").read_text()


def _split_raw() -> tuple[str, str]:
    env, _, rest = RAW.partition("\n\n")
    return env + "\n\n", rest


# -- the captured session -----------------------------------------------------------------------


def test_the_captured_environment_block_parses_with_its_quirks() -> None:
    env_text, _ = _split_raw()

    env = parse_environment(env_text)

    assert env.network
    assert env.script == "ivr"  # agi_network_script carries no leading slash
    assert env.request == "agi://127.0.0.1:4573/ivr"
    assert env.channel == "SIP/sipp-00000006"
    assert env.uniqueid == "1795459766.10"
    assert env.callerid == "sipp"
    assert env.get("agi_enhanced") == "0.0"
    assert env.get("agi_accountcode") == ""  # "agi_accountcode: " with an empty value
    assert env.args == ()
    assert len(env.values) == 22


def test_the_captured_replies_parse_in_order_with_the_unsolicited_hangup() -> None:
    _, replies_text = _split_raw()

    replies = parse_replies(replies_text)

    assert replies == [
        AgiReply(code=200, result="0"),  # ANSWER
        AgiReply(code=200, result="1", data="SIP/sipp-00000006"),  # GET FULL VARIABLE ${CHANNEL}
        AgiReply(code=200, result="1", data="sipp"),  # GET VARIABLE CALLERID(num)
        AgiReply(code=200, result="6"),  # CHANNEL STATUS: Up
        AgiReply(code=200, result="0", endpos=3520),  # STREAM FILE beep
        AgiReply(code=200, result="", data="timeout"),  # GET DATA, no digit
        AgiReply(code=200, result="1"),  # SET VARIABLE
        AgiReply(code=200, result="1"),  # VERBOSE
        AgiReply(code=200, result="0"),  # NOOP
        AgiReply(code=510, message="Invalid or unknown command"),
        AgiReply(code=200, result="1"),  # HANGUP
        AgiReply(code=200, result="0"),  # NOOP after the hang-up, preceded by "HANGUP"
        AgiReply(code=511, message="Command Not Permitted on a dead channel or intercept routine"),
        AgiReply(code=200, result="1", data="ok"),  # GET VARIABLE still works
    ]
    assert replies[5].timed_out and replies[5].result_int is None
    assert replies[12].dead_channel


def test_the_hangup_line_is_absorbed_and_remembered_before_the_next_reply() -> None:
    reader = ReplyReader()

    assert reader.feed("HANGUP") is None
    assert reader.hangup_seen
    assert reader.feed("200 result=0") == AgiReply(code=200, result="0")


def test_our_commands_split_into_the_words_asterisk_received_in_the_capture() -> None:
    sent = [line.split("APP> ", 1)[1] for line in ANNOTATED.splitlines() if "APP> " in line]
    ours = {
        'STREAM FILE beep ""': protocol.stream_file("beep"),
        "GET DATA hello-world 1500 4": protocol.get_data("hello-world", 1500, 4),
        "SET VARIABLE LAB_AGI_RESULT ok": protocol.set_variable("LAB_AGI_RESULT", "ok"),
        'VERBOSE "lab fastagi says hi" 1': protocol.verbose("lab fastagi says hi", 1),
        "GET VARIABLE CALLERID(num)": protocol.get_variable("CALLERID(num)"),
        "GET FULL VARIABLE ${CHANNEL}": protocol.get_full_variable("${CHANNEL}"),
        "ANSWER": protocol.answer(),
        "CHANNEL STATUS": protocol.channel_status(),
        "HANGUP": protocol.hangup(),
    }
    for captured, line in ours.items():
        assert captured in sent
        assert line.endswith(b"\n") and line.count(b"\n") == 1
        assert parse_args(line.decode().rstrip("\n")) == parse_args(captured)


# -- the environment block: bad input ----------------------------------------------------------


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([b"GET / HTTP/1.1\r\n"], "an agi_. environment line"),
        ([b"agi_channel SIP/x\n"], "an agi_. environment line"),
        ([b"AGI_CHANNEL: x\n"], "an agi_. environment line"),
        ([b"\x16\x03\x01\x02\x00\x01\n"], "an agi_. environment line"),
        ([b"agi_network: yes\n", b"agi_channel: SIP/x"], "ended inside the environment block"),
        ([b"agi_network: yes\n", b"agi_network: no\n"], "sent twice"),
        ([b"\n"], "empty environment block"),
    ],
    ids=["http", "no-colon", "upper-case", "tls", "stopped-mid-line", "repeated", "empty"],
)
def test_a_bad_environment_block_is_refused(lines: list[bytes], message: str) -> None:
    reader = EnvironmentReader()
    with pytest.raises(AgiProtocolError, match=message):
        for line in lines:
            reader.feed(line)


def test_an_environment_block_over_the_line_limit_is_refused() -> None:
    reader = EnvironmentReader(max_lines=10)
    with pytest.raises(AgiProtocolError, match="over 10 lines"):
        for number in range(11):
            reader.feed(f"agi_arg_{number}: x\n".encode())


def test_an_environment_block_over_the_byte_limit_is_refused() -> None:
    reader = EnvironmentReader(max_bytes=1000)
    with pytest.raises(AgiProtocolError, match="1000 bytes"):
        for number in range(20):
            reader.feed(f"agi_arg_{number}: {'x' * 100}\n".encode())


def test_a_block_without_its_closing_empty_line_is_refused() -> None:
    with pytest.raises(AgiProtocolError, match="closing empty line"):
        parse_environment("agi_network: yes\nagi_channel: SIP/x\n")


def test_script_path_query_and_arguments() -> None:
    env = parse_environment(
        "agi_network: yes\nagi_network_script: /call-outcome?queue=support&x=1\n"
        "agi_request: agi://h:4573//call-outcome?queue=support&x=1\nagi_arg_1: a b\nagi_arg_2: \n\n"
    )

    assert env.script == "call-outcome"
    assert env.query == {"queue": "support", "x": "1"}
    assert env.args == ("a b", "")


def test_without_network_script_the_path_comes_from_the_request() -> None:
    env = parse_environment("agi_request: agi://127.0.0.1:4573/call-outcome?a=1\n\n")
    assert env.script == "call-outcome"
    assert env.query == {"a": "1"}


# -- replies: the 520 usage block and garbage -------------------------------------------------


def test_a_520_usage_block_spans_lines_to_its_closing_line() -> None:
    replies = parse_replies(
        "520-Invalid command syntax.  Proper usage follows:\n"
        " Usage: SAY DIGITS <number> <escape digits>\n"
        "\tSay a given digit string, returning early if any of the given DTMF digits\n"
        "520 End of proper usage.\n"
        "520 Invalid command syntax.  Proper usage not available.\n"
    )

    assert replies[0].code == 520
    assert replies[0].message == "Invalid command syntax.  Proper usage follows:"
    assert replies[0].usage[0] == " Usage: SAY DIGITS <number> <escape digits>"
    assert len(replies[0].usage) == 2
    assert replies[1] == AgiReply(code=520, message="Invalid command syntax.  Proper usage not available.")


def test_a_usage_block_that_never_ends_is_cut() -> None:
    reader = ReplyReader()
    reader.feed("520-Invalid command syntax.  Proper usage follows:")
    with pytest.raises(AgiProtocolError, match="usage text over"):
        for _ in range(protocol.MAX_USAGE_LINES + 1):
            reader.feed("blah")


@pytest.mark.parametrize(
    "line",
    [
        "",
        "HELLO",
        "200",
        "200 ok",
        "20 result=1",
        "2000 result=1",
        "200-result=1",
        "200 result=1 junk",
        "agi_x: y",
    ],
)
def test_garbage_is_not_a_reply(line: str) -> None:
    with pytest.raises(AgiProtocolError):
        parse_reply_line(line)


def test_reply_data_may_hold_parentheses_and_endpos_follows_data() -> None:
    assert parse_reply_line("200 result=1 (a (b) c)") == AgiReply(code=200, result="1", data="a (b) c")
    assert parse_reply_line("200 result=35 (dtmf) endpos=16000") == AgiReply(
        code=200, result="35", data="dtmf", endpos=16000
    )
    assert parse_reply_line("200 result=-1 endpos=0").result_int == -1


@given(
    result=st.from_regex(r"-?[0-9]{0,6}|[0-9#*]{0,8}", fullmatch=True),
    data=st.none()
    | st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=40).filter(
        lambda d: "endpos=" not in d
    ),
    endpos=st.none() | st.integers(min_value=-1, max_value=10**9),
)
def test_any_200_reply_asterisk_can_write_reads_back(
    result: str, data: str | None, endpos: int | None
) -> None:
    line = f"200 result={result}"
    if data is not None:
        line += f" ({data})"
    if endpos is not None:
        line += f" endpos={endpos}"

    reply = parse_reply_line(line)

    assert (reply.code, reply.result, reply.data, reply.endpos) == (200, result, data, endpos)


@given(st.text(max_size=200))
def test_any_text_is_a_reply_or_a_protocol_error_never_a_crash(line: str) -> None:
    try:
        parse_reply_line(line)
    except AgiProtocolError:
        pass


@given(st.binary(max_size=300))
def test_any_bytes_are_an_environment_line_or_a_protocol_error(raw: bytes) -> None:
    try:
        EnvironmentReader().feed(raw)
    except AgiProtocolError:
        pass


# -- commands: quoting so that no value adds a command ------------------------------------------


@given(st.text(max_size=300))
def test_no_value_can_add_a_command_or_change_the_arguments(value: str) -> None:
    """A caller's name is chosen by the caller: quotes, backslashes, line breaks included."""
    line = protocol.set_variable("CALLER_NAME", value).decode()

    assert line.endswith("\n") and line.count("\n") == 1 and "\r" not in line
    words = parse_args(line[:-1])
    expected = "".join(" " if ord(c) < 32 or ord(c) == 127 else c for c in value)
    assert words == ["SET", "VARIABLE", "CALLER_NAME", expected]


def test_an_injection_attempt_stays_one_argument() -> None:
    name = 'Bob"\nEXEC Dial PJSIP/evil\n\\'

    line = protocol.verbose(name).decode()

    assert line == 'VERBOSE "Bob\\" EXEC Dial PJSIP/evil \\\\" 1\n'
    assert parse_args(line[:-1]) == ["VERBOSE", 'Bob" EXEC Dial PJSIP/evil \\', "1"]


def test_quote_escapes_quotes_and_backslashes() -> None:
    assert quote('a "b" c\\d') == '"a \\"b\\" c\\\\d"'
    assert quote("") == '""'


def test_a_command_asterisk_would_cut_is_refused() -> None:
    with pytest.raises(ValueError, match="at most 8191"):
        protocol.verbose("x" * 9000)


@pytest.mark.parametrize("verb", ["", "get variable", "GET  VARIABLE", "GET\nVARIABLE", "X;Y"])
def test_only_upper_case_words_are_verbs(verb: str) -> None:
    with pytest.raises(ValueError, match="not an AGI command verb"):
        protocol.command(verb)


@pytest.mark.parametrize("name", ["${X}", "A}B", "X\nY", "X Y", "", "1X", "CALLERID(${EVIL})"])
def test_only_plain_names_are_read_or_set(name: str) -> None:
    with pytest.raises(ValueError):
        protocol.check_readable(name)
    with pytest.raises(ValueError):
        protocol.set_variable(name, "v")


def test_functions_with_arguments_may_be_read() -> None:
    assert protocol.check_readable("QUEUE_MEMBER(support,free)") == "QUEUE_MEMBER(support,free)"
    assert protocol.check_readable("STRFTIME(,,%s.%3q)") == "STRFTIME(,,%s.%3q)"


def test_record_file_arguments_follow_asterisk_order() -> None:
    line = protocol.record_file("vm-1", "wav", "#", 60000, beep=True, silence_s=3).decode()
    assert parse_args(line.strip()) == ["RECORD", "FILE", "vm-1", "wav", "#", "60000", "BEEP", "s=3"]
    line = protocol.record_file("vm-1", "wav", "", -1, beep=False, silence_s=0).decode()
    assert parse_args(line.strip()) == ["RECORD", "FILE", "vm-1", "wav", "", "-1"]


def test_say_digits_refuses_what_asterisk_cannot_say() -> None:
    with pytest.raises(ValueError, match="takes digits"):
        protocol.say_digits("12*")


# -- reading values through BASE64_ENCODE --------------------------------------------------------


@given(st.lists(st.text(max_size=60), min_size=1, max_size=5))
def test_any_value_survives_the_read_even_with_line_breaks_and_parentheses(values: list[str]) -> None:
    names = [f"V{i}" for i in range(len(values))]
    model = AgiCallModel(variables=dict(zip(names, values, strict=True)))

    expanded = model.expand(read_expression(names, "n0nce"))

    assert "\n" not in expanded and ")" not in expanded
    read = decode_read(expanded, names, "n0nce")
    assert read == {
        n: v.encode("utf-8", "replace").decode("utf-8", "replace") for n, v in zip(names, values, strict=True)
    }


def test_an_unset_variable_reads_empty_without_an_empty_base64_argument() -> None:
    expression = read_expression(["QUEUESTATUS"], "abc123")
    assert expression == "${BASE64_ENCODE(v${QUEUESTATUS})}|abc123"
    assert decode_read(base64.b64encode(b"v").decode() + "|abc123", ["QUEUESTATUS"], "abc123") == {
        "QUEUESTATUS": ""
    }


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (None, "nonce"),
        ("dg==|dg==", "nonce"),  # a reply forged without knowing the nonce
        ("dg==|dg==|other", "nonce"),
        ("dg==|n1", "expected 2 values, got 1"),
        ("dg==|!!|n1", "not base64"),
        ("dg==|eA==|n1", "marker"),
    ],
)
def test_a_read_reply_that_does_not_fit_is_a_protocol_error(data: str | None, message: str) -> None:
    with pytest.raises(AgiProtocolError, match=message):
        decode_read(data, ["A", "B"], "n1")


def test_nonces_are_fresh_words() -> None:
    first, second = protocol.new_nonce(), protocol.new_nonce()
    assert first != second and first.isalnum()
    with pytest.raises(ValueError, match="nonce"):
        read_expression(["A"], "a|b")
