

def test_a_link_at_the_temporary_name_is_never_written_through(tmp_path, monkeypatch) -> None:
    """The old writer used ``OUT.tmp-<pid>``; a link placed at the (here: forced) temporary
    name makes the write fail, and neither the link's target nor the target file changes."""
    import secrets

    victim = tmp_path / "victim"
    victim.write_text("old")
    (tmp_path / "out").write_text("previous")
    monkeypatch.setattr(secrets, "token_hex", lambda n: "f" * (2 * n))
    (tmp_path / f".out.tmp-{'f' * 16}").symlink_to(victim)
    with pytest.raises(FileExistsError):
        write_atomic(tmp_path / "out", "new")
    assert victim.read_text() == "old" and (tmp_path / "out").read_text() == "previous"
