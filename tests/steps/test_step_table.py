"""StepTable, make_entry and validate_step: the registry's logic, without threads."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import pytest
from step_plugins import Count, Echo

from otpy.errors import (
    ConfigurationError,
    DuplicateStepError,
    StepValidationError,
    UnknownStepError,
)
from otpy.steps import Step, StepContext, StepEntry, StepMetadata, StepResult, StepTable
from otpy.steps._table import make_entry, validate_step


def entry(name: str, cls: type[Step] = Echo, **kw: Any) -> StepEntry:
    return make_entry(name, cls, registered_at=1.0, **kw)


def table_of(*entries: StepEntry) -> StepTable:
    table = StepTable()
    for e in entries:
        table = table.with_entry(e)
    return table


# -- the table --------------------------------------------------------------------------


def test_with_entry_makes_a_new_table_and_leaves_the_old_one() -> None:
    empty = StepTable()
    one = empty.with_entry(entry("echo"))
    two = one.with_entry(entry("count", Count))
    assert len(empty) == 0 and empty.get("echo") is None and "echo" not in empty
    assert one.names == ("echo",) and "count" not in one
    assert two.names == ("count", "echo")
    assert list(two) == ["count", "echo"]
    assert two.get("echo") is one.get("echo")
    assert two.get("count") is not None and two.get("count").step_cls is Count  # type: ignore[union-attr]
    assert dict(two.entries) == {"count": two.get("count"), "echo": two.get("echo")}


def test_names_stay_sorted_whatever_the_order_of_writes() -> None:
    names = ["m", "b", "z", "a", "k.v", "_x", "B-2", "c"]
    table = table_of(*(entry(n) for n in names))
    assert table.names == tuple(sorted(names))
    for n in ("z", "_x", "k.v"):
        table = table.without(n)
        assert table.names == tuple(sorted(set(table.names)))
    assert table.names == tuple(sorted(set(names) - {"z", "_x", "k.v"}))


def test_duplicate_needs_replace() -> None:
    old = entry("echo")
    table = table_of(old)
    with pytest.raises(DuplicateStepError, match="'echo' is already registered") as info:
        table.with_entry(entry("echo", Count))
    assert info.value.name == "echo"
    assert table.get("echo") is old
    new = entry("echo", Count)
    replaced = table.with_entry(new, replace=True)
    assert replaced.get("echo") is new and replaced.names == ("echo",)
    assert table.get("echo") is old  # the old table is untouched


def test_without_removes_and_returns_itself_when_absent() -> None:
    table = table_of(entry("echo"), entry("count", Count))
    assert table.without("nope") is table
    smaller = table.without("echo")
    assert smaller.names == ("count",) and smaller.get("echo") is None
    assert table.names == ("count", "echo")
    assert smaller.list("text") == [smaller.get("count")]


def test_list_by_capability_sorted_and_kept_up_to_date() -> None:
    table = table_of(
        entry("zeta"),  # text
        entry("alpha", Count),  # text, analysis
        entry("mid", metadata={"capabilities": ["vision"]}),
    )
    assert [e.name for e in table.list()] == ["alpha", "mid", "zeta"]
    assert [e.name for e in table.list("text")] == ["alpha", "zeta"]
    assert [e.name for e in table.list("analysis")] == ["alpha"]
    assert table.list("nothing") == []
    assert table.capabilities() == ("analysis", "text", "vision")
    # replacing an entry moves it between capabilities
    swapped = table.with_entry(entry("alpha", metadata={"capabilities": ["vision"]}), replace=True)
    assert [e.name for e in swapped.list("text")] == ["zeta"]
    assert swapped.list("analysis") == []
    assert [e.name for e in swapped.list("vision")] == ["alpha", "mid"]
    assert swapped.capabilities() == ("text", "vision")
    assert [e.name for e in table.list("analysis")] == ["alpha"]  # old table unchanged


def test_table_from_a_mapping() -> None:
    e1, e2 = entry("b", Count), entry("a")
    table = StepTable({"b": e1, "a": e2})
    assert table.names == ("a", "b")
    assert [e.name for e in table.list("analysis")] == ["b"]
    with pytest.raises(ConfigurationError, match="'x' does not hold its entry"):
        StepTable({"x": e1})


def test_table_is_immutable() -> None:
    table = table_of(entry("echo"))
    with pytest.raises(AttributeError, match="immutable"):
        table.names = ()  # type: ignore[misc]
    with pytest.raises(AttributeError, match="immutable"):
        del table.get  # type: ignore[misc]
    with pytest.raises(TypeError):
        table.entries["x"] = entry("x")  # type: ignore[index]
    with pytest.raises(AttributeError):
        table.get("echo").name = "other"  # type: ignore[misc, union-attr]
    assert table.names == ("echo",)


def test_closest_and_unknown() -> None:
    table = table_of(entry("claude"), entry("claude_smart"), entry("gemini"), entry("Set.Var"))
    assert table.closest("claud") == "claude"
    assert table.closest("gemni") == "gemini"
    assert table.closest("set.var") == "Set.Var"  # case first
    assert table.closest("zzzzzz") is None
    assert table.closest(42) is None
    assert StepTable().closest("claude") is None
    err = table.unknown("claud")
    assert isinstance(err, UnknownStepError) and isinstance(err, LookupError)
    assert err.name == "claud" and err.suggestion == "claude"
    assert err.known == ("Set.Var", "claude", "claude_smart", "gemini")
    assert "did you mean 'claude'?" in str(err)
    with pytest.raises(UnknownStepError) as info:
        table.require("gemin")
    assert info.value.suggestion == "gemini"
    with pytest.raises(UnknownStepError):
        table.require(["unhashable"])  # type: ignore[arg-type]
    assert table.require("gemini").name == "gemini"


# -- make_entry: what register_step accepts ---------------------------------------------


@pytest.mark.parametrize("name", ["", "1abc", "a b", "a/b", "x\n", "é", None, 3, b"abc"])
def test_bad_names_are_refused(name: Any) -> None:
    with pytest.raises(ConfigurationError, match=r"name .* is invalid"):
        make_entry(name, Echo, registered_at=0.0)


@pytest.mark.parametrize("name", ["a", "_", "claude_smart", "my-plugin.step_2", "A.B-C"])
def test_good_names(name: str) -> None:
    assert make_entry(name, Echo, registered_at=0.0).name == name


class Abstract(Step):
    pass


class NotAStep:
    def execute(self, step: Any, context: Any) -> None:
        return None


@pytest.mark.parametrize(
    ("step_cls", "message"),
    [
        (Echo(), "an instance"),
        (NotAStep, "not a Step subclass"),
        ("Echo", "not a Step subclass"),
        (Abstract, "Abstract does not implement execute"),
    ],
)
def test_bad_step_classes_are_refused(step_cls: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as info:
        make_entry("thing", step_cls, registered_at=0.0)
    assert "'thing'" in str(info.value)


def test_validator_must_be_callable() -> None:
    with pytest.raises(ConfigurationError, match="validator must be callable"):
        make_entry("x", Echo, "not callable", registered_at=0.0)
    e = make_entry("x", Echo, dict, registered_at=0.0)
    assert e.validator is dict


def test_metadata_defaults_to_the_class_and_accepts_a_dict() -> None:
    assert make_entry("x", Echo, registered_at=0.0).metadata is Echo.metadata
    own = StepMetadata(version="2.0.0")
    assert make_entry("x", Echo, metadata=own, registered_at=0.0).metadata is own
    made = make_entry(
        "x", Echo, metadata={"capabilities": ["a"], "version": "3.1.4"}, registered_at=7.5
    )
    assert made.metadata == StepMetadata(capabilities=("a",), version="3.1.4")
    assert made.registered_at == 7.5


@pytest.mark.parametrize(
    ("metadata", "field"),
    [
        ({"version": "one"}, "version"),
        ({"colour": "red"}, "colour"),
        ({"required_fields": 5}, "required_fields"),
    ],
)
def test_bad_metadata_names_the_field(metadata: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigurationError, match=f"field '{field}'"):
        make_entry("x", Echo, metadata=metadata, registered_at=0.0)


def test_metadata_of_the_wrong_type() -> None:
    with pytest.raises(ConfigurationError, match="metadata must be a StepMetadata"):
        make_entry("x", Echo, metadata=["text"], registered_at=0.0)

    class Sloppy(Echo):
        metadata: ClassVar[Any] = {"capabilities": ["text"], "version": "bad"}

    with pytest.raises(ConfigurationError, match=r"Sloppy.metadata field 'version'"):
        make_entry("x", Sloppy, registered_at=0.0)


# -- validate_step ----------------------------------------------------------------------


def test_validate_resolves_the_type_and_runs_the_class() -> None:
    table = table_of(entry("echo"))
    config = {"name": "say", "type": "echo", "prompt": "hi"}
    assert validate_step(table, config) == config
    with pytest.raises(StepValidationError) as info:
        validate_step(table, {"name": "say", "type": "echo"})
    assert (info.value.step, info.value.field) == ("say", "prompt")
    with pytest.raises(StepValidationError) as info:
        validate_step(table, {"name": "say", "type": "echo", "prompt": "x", "tone": "dry"})
    assert (info.value.step, info.value.field) == ("say", "tone")


@pytest.mark.parametrize("config", [{"name": "s"}, {"name": "s", "type": 3}, {"type": ""}])
def test_validate_needs_a_str_type(config: dict[str, Any]) -> None:
    with pytest.raises(StepValidationError, match="needs a 'type'") as info:
        validate_step(table_of(entry("echo")), config)
    assert info.value.field == "type"
    assert info.value.step == config.get("name")


def test_validate_needs_a_mapping() -> None:
    with pytest.raises(StepValidationError, match="must be a mapping"):
        validate_step(StepTable(), ["type", "echo"])


def test_validate_unknown_type_suggests() -> None:
    table = table_of(entry("echo"), entry("count", Count))
    with pytest.raises(UnknownStepError) as info:
        validate_step(table, {"name": "s", "type": "ecoh", "prompt": "x"})
    assert info.value.suggestion == "echo"
    assert info.value.known == ("count", "echo")


def test_validator_may_replace_or_keep_the_config() -> None:
    seen: list[dict[str, Any]] = []

    def keep(config: dict[str, Any]) -> None:
        seen.append(config)

    def shout(config: dict[str, Any]) -> Mapping[str, Any]:
        return {**config, "prompt": config["prompt"].upper()}

    table = table_of(entry("keep", validator=keep), entry("shout", validator=shout))
    assert validate_step(table, {"type": "keep", "prompt": "a"}) == {"type": "keep", "prompt": "a"}
    assert seen == [{"type": "keep", "prompt": "a"}]  # it gets the class-validated dict
    assert validate_step(table, {"type": "shout", "prompt": "a"})["prompt"] == "A"


def test_a_validator_that_raises_is_a_validation_error() -> None:
    def picky(config: dict[str, Any]) -> None:
        raise ValueError("prompt too polite")

    def strict(config: dict[str, Any]) -> None:
        raise StepValidationError("nope", step="own", field="prompt")

    def wrong(config: dict[str, Any]) -> int:
        return 3

    table = table_of(
        entry("picky", validator=picky),
        entry("strict", validator=strict),
        entry("wrong", validator=wrong),  # type: ignore[arg-type]
    )
    with pytest.raises(StepValidationError) as info:
        validate_step(table, {"name": "s1", "type": "picky", "prompt": "please"})
    assert str(info.value) == (
        "step 's1': validator of step type 'picky' raised ValueError: prompt too polite"
    )
    assert isinstance(info.value.__cause__, ValueError)
    assert info.value.step == "s1"
    with pytest.raises(StepValidationError) as info:
        validate_step(table, {"type": "strict", "prompt": "x"})
    assert (info.value.step, info.value.field) == ("own", "prompt")  # passed through as is
    with pytest.raises(StepValidationError, match="returned int, not a mapping") as info:
        validate_step(table, {"type": "wrong", "prompt": "x"})
    assert info.value.step == "wrong"  # no name: the type names it


def test_a_step_validate_that_raises_or_returns_none() -> None:
    class Crashy(Echo):
        @classmethod
        def validate(cls, config: Mapping[str, Any]) -> dict[str, Any]:
            raise KeyError("boom")

    class Lazy(Echo):
        @classmethod
        def validate(cls, config: Mapping[str, Any]) -> dict[str, Any]:
            return None  # type: ignore[return-value]

    table = table_of(entry("crashy", Crashy), entry("lazy", Lazy))
    with pytest.raises(StepValidationError, match=r"validate\(\) of step type 'crashy' raised Key"):
        validate_step(table, {"type": "crashy"})
    with pytest.raises(StepValidationError, match="returned None"):
        validate_step(table, {"type": "lazy"})


def test_a_registered_dynamic_step_executes() -> None:
    table = table_of(entry("echo"), entry("count", Count))
    context = StepContext(inputs={"q": 1})
    config = validate_step(table, {"name": "s", "type": "echo", "prompt": "hi", "upper": True})
    result = table.require("echo").step_cls().execute(config, context)
    assert isinstance(result, StepResult)
    assert (result.output, result.text, context.variables["last"]) == ("HI", "HI", "HI")
    counted = table.require("count").step_cls().execute({"text": "a b c"}, context)
    assert counted.output == 3
