"""Nested pipelines in pipeline_ex's form: files and inline pipelines, input mapping with
types kept, output extraction, context isolation and inheritance, the depth limit."""

from __future__ import annotations

from pathlib import Path

from otpy import Runtime


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_inputs_keep_their_types_and_outputs_are_extracted(rt: Runtime, tmp_path: Path) -> None:
    write(tmp_path / "child.yaml", """\
workflow:
  name: child
  steps:
    - {name: types, type: test_echo, value: {n: "{{inputs.n}}", items: "{{inputs.items}}", cfg: "{{inputs.cfg}}"}}
    - {name: text, type: test_echo, value: "n={{inputs.n}} first={{inputs.items.0}}"}
""")  # fmt: skip  # noqa: E501
    parent = write(tmp_path / "parent.yaml", """\
workflow:
  name: parent
  steps:
    - {name: src, type: test_echo, value: {n: 3, items: [a, b], cfg: {deep: true}}}
    - name: call
      type: pipeline
      pipeline_file: child.yaml
      inputs:
        n: "{{steps.src.result.n}}"
        items: "{{steps.src.items}}"
        cfg: "{{steps.src.cfg}}"
      outputs:
        - text
        - {path: types.n, as: number}
        - {path: types.cfg.deep}
    - {name: use, type: test_echo, value: "{{steps.call.number + 1}} {{steps.call.text}}"}
""")  # fmt: skip
    result = rt.run_pipeline(parent)
    assert result.ok, result.error
    assert result.step("call").output == {
        "text": "n=3 first=a", "number": 3, "types.cfg.deep": True,
    }  # fmt: skip
    assert result.step("use").output == "4 n=3 first=a"


def test_a_missing_output_names_the_path_and_what_exists(rt: Runtime, tmp_path: Path) -> None:
    write(
        tmp_path / "child.yaml",
        "workflow:\n  name: child\n  steps:\n    - {name: a, type: test_echo, value: {x: 1}}\n",
    )
    parent = write(tmp_path / "parent.yaml", """\
workflow:
  name: parent
  steps:
    - {name: call, type: pipeline, pipeline_file: child.yaml, outputs: [{path: a.y, as: y}]}
""")  # fmt: skip
    result = rt.run_pipeline(parent)
    assert result.failed_step == "call" and result.error is not None
    assert (
        "output 'a.y' of nested pipeline 'child': steps.a.y: no field 'y'" in result.error.message
    )


def test_a_child_sees_only_what_it_is_given(rt: Runtime, tmp_path: Path) -> None:
    write(tmp_path / "peek.yaml", """\
workflow:
  name: peek
  steps:
    - {name: a, type: test_echo, value: "{{steps.hidden.result}}"}
""")  # fmt: skip
    write(
        tmp_path / "vars.yaml",
        "workflow:\n  name: vars\n  steps:\n    - {name: a, type: test_echo, value: '{{state.marker}}'}\n",  # noqa: E501
    )
    write(
        tmp_path / "globals.yaml",
        "workflow:\n  name: globals\n  steps:\n    - {name: a, type: test_echo, value: '{{global_vars.key}} {{inputs.mode}}'}\n",  # noqa: E501
    )
    parent = write(tmp_path / "parent.yaml", """\
workflow:
  name: parent
  global_vars: {key: parent-key}
  steps:
    - {name: hidden, type: test_echo, value: hidden}
    - {name: marker, type: set_variable, variables: {marker: m4rk}}
    - {name: peek, type: pipeline, pipeline_file: peek.yaml, on_error: continue}
    - {name: vars, type: pipeline, pipeline_file: vars.yaml, on_error: continue}
    - {name: isolated, type: pipeline, pipeline_file: globals.yaml, inputs: {mode: m}, on_error: continue}
    - {name: inherited, type: pipeline, pipeline_file: globals.yaml, inputs: {mode: m}, config: {inherit_context: true}}
""")  # fmt: skip  # noqa: E501
    result = rt.run_pipeline(parent)
    assert result.ok
    peek = result.step("peek").error
    assert peek is not None and "steps.hidden: no step 'hidden' (steps: a)" in peek.message
    token = result.step("vars").error
    assert token is not None and "state.marker: no variable 'marker'" in token.message
    isolated = result.step("isolated").error
    assert isolated is not None and "global_vars.key: no global var 'key'" in isolated.message
    assert result.step("inherited").output == {"a": "parent-key m"}


def test_three_deep_inline_and_the_depth_limit(rt: Runtime, tmp_path: Path) -> None:
    inline = """\
workflow:
  name: top
  steps:
    - name: level1
      type: pipeline
      inputs: {v: 1}
      pipeline:
        name: one
        steps:
          - name: level2
            type: pipeline
            inputs: {v: "{{inputs.v + 1}}"}
            pipeline:
              name: two
              steps:
                - name: level3
                  type: pipeline
                  inputs: {v: "{{inputs.v + 1}}"}
                  pipeline:
                    name: three
                    steps:
                      - {name: leaf, type: test_echo, value: "depth {{inputs.v}}"}
"""
    result = rt.run_pipeline(inline)
    assert result.ok
    assert result.step("level1").output == {"level2": {"level3": {"leaf": "depth 3"}}}
    limited = inline.replace(
        '                  inputs: {v: "{{inputs.v + 1}}"}\n',
        '                  inputs: {v: "{{inputs.v + 1}}"}\n                  config: {max_depth: 2}\n',  # noqa: E501
    )
    assert limited != inline
    result = rt.run_pipeline(limited)
    assert result.failed_step == "level1" and result.error is not None
    assert "pipelines nest deeper than 2 levels (top -> one -> two -> an inline pipeline)" in (
        result.error.message
    )
    self_calling = write(tmp_path / "self.yaml", """\
workflow:
  name: self
  steps:
    - {name: again, type: pipeline, pipeline_file: self.yaml, config: {max_depth: 3}}
""")  # fmt: skip
    result = rt.run_pipeline(self_calling)
    assert result.error is not None
    assert "pipelines nest deeper than 3 levels (self -> self -> self -> self -> self.yaml)" in (
        result.error.message
    )


def test_bad_nested_sources_fail_the_step_naming_them(rt: Runtime, tmp_path: Path) -> None:
    write(
        tmp_path / "broken.yaml",
        "workflow:\n  name: broken\n  steps:\n    - {name: a, type: nope}\n",
    )
    parent = write(tmp_path / "parent.yaml", """\
workflow:
  name: parent
  steps:
    - {name: missing, type: pipeline, pipeline_file: nowhere.yaml, on_error: continue}
    - {name: broken, type: pipeline, pipeline_file: broken.yaml, on_error: continue}
    - {name: failing, type: pipeline, on_error: continue, pipeline: {name: f, steps: [{name: x, type: test_echo, fail: true}]}}
""")  # fmt: skip  # noqa: E501
    result = rt.run_pipeline(parent)
    assert result.ok
    errors = {o.name: o.error.message for o in result.steps if o.error is not None}
    assert "nowhere.yaml' does not exist" in errors["missing"]
    assert "unknown step type 'nope'" in errors["broken"] and "broken.yaml:4:" in errors["broken"]
    assert "pipeline 'f'" in errors["failing"] and "failed at step 'x'" in errors["failing"]
    assert rt.state == "running"
