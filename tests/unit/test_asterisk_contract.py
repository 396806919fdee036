"""``dialplan/`` and ``asterisk/`` use exactly the names the code uses (``callcenter/asterisk_names.py``).

The Stasis application, the AGI scripts, the dialplan contexts, every ``CC_*`` variable, the globals,
the FastAGI port, the ARI user and the queue settings the call-outcome hook relies on.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from callcenter import asterisk_names as names
from callcenter.agi.outcome import READ_VARIABLES
from callcenter.config import AriSettings, Settings
from callcenter.queue.service import UNKNOWN_QUEUE

ROOT = Path(__file__).parents[2]
DIALPLAN = ROOT / "dialplan" / "extensions_callcenter.conf"
ASTERISK = ROOT / "asterisk"
CONF_FILES = sorted([*(ROOT / "dialplan").glob("*.conf"), *ASTERISK.glob("*.conf")])

CONSTANTS = {k: v for k, v in vars(names).items() if k.isupper() and isinstance(v, str | int)}
VARIABLES = {v for k, v in CONSTANTS.items() if k.startswith(("VAR_", "GLOBAL_"))}
CONTEXTS = {v for k, v in CONSTANTS.items() if k.startswith("CONTEXT_")}
FASTAGI_SCRIPTS = {names.AGI_CALL_OUTCOME, names.AGI_CALLBACK_OFFER, names.AGI_VOICEMAIL}


def _code(text: str) -> str:
    """Configuration text without comments (``;`` to the end of the line, ``\\;`` kept)."""
    return "\n".join(re.split(r"(?<!\\);", line, maxsplit=1)[0].rstrip() for line in text.splitlines())


def _text(path: Path) -> str:
    return _code(path.read_text())


ALL_CODE = {path: _text(path) for path in CONF_FILES}


def _sections(text: str) -> Iterator[tuple[str, str, dict[str, list[str]]]]:
    """``(name, template-spec, options)`` of each ``[name](spec)`` section, options as key -> values."""
    name, spec, options = "", "", dict[str, list[str]]()
    for line in text.splitlines():
        header = re.fullmatch(r"\[([^\]]+)\](?:\(([^)]*)\))?", line.strip())
        if header:
            if name:
                yield name, spec, options
            name, spec, options = header[1], header[2] or "", {}
        elif "=" in line and name:
            key, _, value = line.partition("=")
            options.setdefault(key.strip().rstrip(">").strip(), []).append(value.strip().lstrip(">").strip())
    if name:
        yield name, spec, options


def _apps(app: str) -> list[str]:
    """The argument text of every call of dialplan application ``app`` in every file."""
    found: list[str] = []
    for text in ALL_CODE.values():
        found += re.findall(rf"\b{app}\(([^\n]*)\)\s*$", text, flags=re.MULTILINE)
    return found


def test_the_files_the_compose_file_mounts_exist() -> None:
    assert DIALPLAN.exists()
    for name in (
        "http.conf",
        "ari.conf",
        "pjsip.conf",
        "extensions.conf",
        "modules.conf",
        "musiconhold.conf",
        "queues.conf",
    ):
        assert (ASTERISK / name).exists(), name


def test_stasis_uses_our_application_name() -> None:
    calls = _apps("Stasis")
    assert calls, "the ARI-native entry calls Stasis()"
    assert {c.split(",")[0] for c in calls} == {names.STASIS_APP}
    assert AriSettings().app == names.STASIS_APP
    assert Settings.from_env({}).ari.app == names.STASIS_APP


def test_fastagi_calls_name_our_scripts_and_the_classic_call_our_program() -> None:
    fastagi, classic = set(), set()
    for call in _apps("AGI"):
        target = call.split(",")[0]
        if target.startswith(("${" + names.GLOBAL_AGI_URL + "}/", "agi://")):
            fastagi.add(target.rsplit("/", 1)[1])
        else:
            classic.add(target)
    assert fastagi == FASTAGI_SCRIPTS
    assert classic == {names.AGI_CLASSIC_OUTCOME}


def test_every_cc_variable_in_the_configuration_is_a_name_the_code_knows() -> None:
    used = set()
    for text in ALL_CODE.values():
        used |= set(re.findall(r"\bCC_[A-Z0-9_]+\b", text))
    assert used <= VARIABLES, sorted(used - VARIABLES)
    assert VARIABLES <= used, f"names the dialplan never uses: {sorted(VARIABLES - used)}"


def test_every_cc_variable_the_hook_reads_is_set_by_the_dialplan_or_by_a_script() -> None:
    dialplan = _text(DIALPLAN)
    set_here = set(re.findall(r"Set\((CC_[A-Z0-9_]+)=", dialplan))
    read = {v for v in READ_VARIABLES.values() if v.startswith("CC_")}
    # CC_CALLBACK is set by the callback-offer script (a later release), CC_VOICEMAIL by the voicemail
    # script, CC_OUTCOME by call-outcome.
    assert read - set_here == {names.VAR_CALLBACK, names.VAR_VOICEMAIL}
    assert names.VAR_OUTCOME not in set_here


def test_the_dialplan_reports_unknown_queues_as_the_service_does() -> None:
    assert re.findall(r"Set\(CC_FAILED=([^)]*)\)", _text(DIALPLAN)) == [UNKNOWN_QUEUE]
    assert re.findall(r'"\$\{CC_CALLBACK\}" = "([^"]*)"', _text(DIALPLAN)) == [names.CALLBACK_ACCEPTED]


def test_the_dialplan_defines_exactly_our_contexts_and_every_jump_lands_in_one() -> None:
    defined_here = {name for name, _, _ in _sections(_text(DIALPLAN))}
    assert defined_here == CONTEXTS

    defined = defined_here | {name for name, _, _ in _sections(_text(ASTERISK / "extensions.conf"))}
    targets = [c.split(",")[0] for c in _apps("Gosub") + _apps("Goto") if c.count(",") >= 2]
    targets += re.findall(r"hangup_handler_push\)=([^,]+),", "\n".join(ALL_CODE.values()))
    assert targets and set(targets) <= defined, sorted(set(targets) - defined)


def test_the_exit_context_answers_the_exit_key() -> None:
    exit_context = _text(DIALPLAN).split(f"[{names.CONTEXT_QUEUE_EXIT}]", 1)[1].split("\n[", 1)[0]
    assert re.search(rf"^exten => {names.QUEUE_EXIT_KEY},1,", exit_context, flags=re.MULTILINE)


def test_the_exit_context_takes_the_voicemail_key_to_the_voicemail_script() -> None:
    exit_context = _text(DIALPLAN).split(f"[{names.CONTEXT_QUEUE_EXIT}]", 1)[1].split("\n[", 1)[0]
    keys = re.findall(r"^exten => ([^,]+),1,", exit_context, flags=re.MULTILINE)
    assert sorted(keys) == sorted([names.QUEUE_EXIT_KEY, names.QUEUE_VOICEMAIL_KEY])
    voicemail = exit_context.split(f"exten => {names.QUEUE_VOICEMAIL_KEY},1,", 1)[1].split("exten =>", 1)[0]
    assert f"/{names.AGI_VOICEMAIL}," in voicemail
    assert f'"${{{names.VAR_VOICEMAIL}}}" = "{names.VOICEMAIL_RECORDED}"' in voicemail


def test_the_fastagi_url_uses_our_port() -> None:
    urls = re.findall(r"agi://[^/\s)]+", "\n".join(ALL_CODE.values()))
    assert urls
    assert {int(url.rsplit(":", 1)[1]) for url in urls} == {names.AGI_DEFAULT_PORT}


def test_extensions_conf_includes_the_dialplan_and_sets_every_global() -> None:
    text = (ASTERISK / "extensions.conf").read_text()
    assert "#include dialplan/extensions_callcenter.conf" in text
    globals_ = dict(next(opts for name, _, opts in _sections(_code(text)) if name == "globals"))
    assert set(globals_) == {names.GLOBAL_AGI_URL, names.GLOBAL_OUTCOME_HOOK, names.GLOBAL_API_URL}
    assert globals_[names.GLOBAL_OUTCOME_HOOK] == ["fastagi"]


def _objects(path: Path) -> list[tuple[str, dict[str, list[str]]]]:
    """Each concrete section of ``path`` with its templates' options merged in (``[x](tpl)``)."""
    sections = list(_sections(_text(path)))
    templates: dict[str, dict[str, list[str]]] = {}
    objects = []
    for name, spec, opts in sections:
        merged: dict[str, list[str]] = {}
        for parent in (p for p in spec.split(",") if p and p != "!"):
            merged.update(templates[parent])
        merged.update(opts)
        if "!" in spec.split(","):
            templates[name] = merged
        else:
            objects.append((name, merged))
    return objects


def _queues() -> dict[str, dict[str, list[str]]]:
    return {name: opts for name, opts in _objects(ASTERISK / "queues.conf") if name != "general"}


def test_every_app_queue_queue_feeds_the_hooks() -> None:
    queues = _queues()
    assert queues
    for name, options in queues.items():
        assert options["context"] == [names.CONTEXT_QUEUE_EXIT], name
        assert options["setinterfacevar"] == ["yes"], name  # MEMBERINTERFACE: who answered
        assert options["setqueueentryvar"] == ["yes"], name  # QEHOLDTIME: after how long


def test_queue_members_are_endpoints_of_pjsip_conf() -> None:
    endpoints = {name for name, opts in _objects(ASTERISK / "pjsip.conf") if opts.get("type") == ["endpoint"]}
    members = {m.split(",")[0] for q in _queues().values() for m in q.get("member", [])}
    assert members and {m.removeprefix("PJSIP/") for m in members} <= endpoints


def test_ari_conf_has_the_user_the_service_logs_in_as() -> None:
    users = {
        name: opts
        for name, _, opts in _sections(_text(ASTERISK / "ari.conf"))
        if opts.get("type") == ["user"]
    }
    assert AriSettings().username in users
    assert users[AriSettings().username]["read_only"] == ["no"]


def test_http_conf_serves_ari_where_the_compose_file_points() -> None:
    general = dict(
        next(opts for name, _, opts in _sections(_text(ASTERISK / "http.conf")) if name == "general")
    )
    assert general["enabled"] == ["yes"]
    compose = (ROOT / "docker-compose.yml").read_text()
    assert f"http://asterisk:{general['bindport'][0]}" in compose


@pytest.mark.parametrize(
    "module",
    [
        "app_stasis.so",
        "res_ari.so",
        "res_agi.so",
        "app_queue.so",
        "func_base64.so",
        "func_strings.so",
        "func_channel.so",
        "app_stack.so",
    ],
)
def test_modules_conf_requires_what_the_dialplan_needs(module: str) -> None:
    modules = dict(
        next(opts for name, _, opts in _sections(_text(ASTERISK / "modules.conf")) if name == "modules")
    )
    assert module in modules["require"]
