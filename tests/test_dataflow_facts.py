"""Dataflow: which bindings of a name reach a use (branches, loops, the previous iteration)."""
from __future__ import annotations

import textwrap

import libcst as cst

from nnlint.facts import FileFacts


def reaching(source: str, marker: str = "use") -> list[str]:
    """Source text of every binding that reaches the name passed to ``use(...)``, newest first."""
    facts = FileFacts("m.py", cst.parse_module(textwrap.dedent(source)), module_name="m")
    (call,) = [c for c in facts.calls() if isinstance(c.func, cst.Name) and c.func.value == marker]
    name = call.args[0].value
    assert isinstance(name, cst.Name)
    module = facts.module
    return [module.code_for_node(d.value) if d.value is not None else type(d.statement).__name__
            for d in facts.dataflow.definitions(name)]


def test_the_newest_unconditional_binding_hides_older_ones() -> None:
    assert reaching("x = a()\nx = b()\nuse(x)\n") == ["b()"]


def test_both_branches_of_an_if_reach() -> None:
    assert reaching("if c:\n    x = a()\nelse:\n    x = b()\nuse(x)\n") == ["b()", "a()"]


def test_a_later_binding_in_the_loop_reaches_through_the_previous_iteration() -> None:
    source = """
    x = a()
    for item in items:
        use(x)
        x = b(x)
    """
    assert reaching(source) == ["a()", "b(x)"]


def test_a_binding_that_runs_first_in_every_iteration_hides_the_later_ones() -> None:
    source = """
    for images in loader:
        out = D(images)
        use(out)
        out = D(G(z))
        loss = criterion(out, y)
    """
    assert reaching(source) == ["D(images)"]


def test_a_conditional_binding_in_the_loop_does_not_hide_the_previous_iteration() -> None:
    source = """
    out = start()
    while running:
        if c:
            out = a()
        use(out)
        out = b()
    """
    assert reaching(source) == ["a()", "start()", "b()"]


def test_the_loop_target_is_rebound_every_iteration() -> None:
    source = """
    for x in xs:
        use(x)
        x = twice(x)
    """
    assert reaching(source) == ["For"]


def test_nested_loops_see_only_the_iterations_not_covered() -> None:
    source = """
    for epoch in epochs:
        h = init()
        for step in steps:
            use(h)
            h = update(h)
        h = finish(h)
    """
    # h = init() runs first in every outer iteration: finish(h) never reaches the use,
    # update(h) from the previous inner iteration does
    assert reaching(source) == ["init()", "update(h)"]


def test_unpacking_a_call_records_which_element_each_name_is() -> None:
    source = "recon, mu, logvar = model(x)\nuse(mu)\n"
    facts = FileFacts("m.py", cst.parse_module(source), module_name="m")
    (call,) = [c for c in facts.calls() if isinstance(c.func, cst.Name) and c.func.value == "use"]
    (definition,) = facts.dataflow.definitions(call.args[0].value)  # type: ignore[arg-type]
    assert definition.value is None and definition.element == 1
    assert facts.module.code_for_node(definition.unpacked) == "model(x)"  # type: ignore[arg-type]


def test_unpacking_with_a_star_or_a_literal_tuple_is_not_an_element() -> None:
    for source in ("first, *rest = model(x)\nuse(first)\n", "a, b = f(x), g(x)\nuse(a)\n"):
        facts = FileFacts("m.py", cst.parse_module(source), module_name="m")
        (call,) = [c for c in facts.calls() if isinstance(c.func, cst.Name) and c.func.value == "use"]
        (definition,) = facts.dataflow.definitions(call.args[0].value)  # type: ignore[arg-type]
        assert definition.element is None


def test_a_for_iterable_reads_the_binding_before_the_loop() -> None:
    source = """
    x = data()
    for x in g(use(x)):
        x = h(x)
    """
    assert reaching(source) == ["data()"]


def test_after_a_for_loop_the_older_binding_may_still_hold() -> None:
    # an empty iterable leaves x as it was, in the else branch and after the loop
    assert reaching("x = 0\nfor x in xs:\n    pass\nuse(x)\n") == ["For", "0"]
    assert reaching("x = 0\nfor x in xs:\n    pass\nelse:\n    use(x)\n") == ["For", "0"]


def test_a_while_test_runs_every_iteration() -> None:
    source = """
    x = first()
    while use(x):
        x = step(x)
    """
    assert reaching(source) == ["first()", "step(x)"]


def test_a_closure_free_variable_takes_its_enclosing_binding() -> None:
    source = textwrap.dedent('''
        def main(model, make):
            step = make(model.parameters())
            twice = 1
            twice = 2

            def inner():
                step()
                twice
                local = 3
                local
        ''')
    facts = FileFacts("m.py", cst.parse_module(source))
    reads = [n for n in facts.nodes_of(cst.Name) if n.value in ("step", "twice", "local")]
    last = {n.value: n for n in reads}  # the reads inside inner() come last
    assert facts.module.code_for_node(facts.dataflow.enclosing_value(last["step"])) == "make(model.parameters())"
    assert facts.dataflow.enclosing_value(last["twice"]) is None  # bound twice: not one value
    assert facts.dataflow.enclosing_value(last["local"]) is None  # bound in inner() itself


def test_a_binding_overwritten_in_its_own_branch_does_not_reach() -> None:
    source = """
    x = a()
    if mask is not None:
        x = b(x)
        x = c(x)
    use(x)
    """
    assert reaching(source) == ["c(x)", "a()"]


def test_a_binding_a_break_or_an_exception_may_leave_standing_still_reaches() -> None:
    loop = """
    for item in items:
        x = a()
        if item:
            break
        x = b()
    use(x)
    """
    assert reaching(loop) == ["b()", "a()"]
    guarded = """
    try:
        x = a()
        x = b()
    except ValueError:
        pass
    use(x)
    """
    assert reaching(guarded) == ["b()", "a()"]
