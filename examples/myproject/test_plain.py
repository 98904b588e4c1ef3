"""A test that uses no wqlab fixture: with the plugin installed it runs without booting
anything (wqlab boots a VM only for a test that asks for one)."""


def test_arithmetic() -> None:
    assert 2 + 2 == 4
