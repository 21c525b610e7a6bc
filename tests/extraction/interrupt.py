"""Ctrl-C in the middle of an extraction CLI, then its resume: what the extractors' resume tests share."""
import pytest


def interrupt_on_second_video(monkeypatch, family_cls, main, args) -> None:
    """main(args) stopped by a KeyboardInterrupt while the second video finishes (family_cls.finish)."""
    finish, finished = family_cls.finish, []

    def interrupt_on_second(self, features):
        finished.append(1)
        if len(finished) == 2:
            raise KeyboardInterrupt
        return finish(self, features)

    monkeypatch.setattr(family_cls, "finish", interrupt_on_second)
    with pytest.raises(KeyboardInterrupt):
        main(args)
    monkeypatch.setattr(family_cls, "finish", finish)


def resume_and_record(monkeypatch, family_cls, main, args) -> list:
    """main(args) run again; returns the names of the videos it prepared (decoded) this time."""
    prepare, prepared = family_cls.prepare, []
    monkeypatch.setattr(family_cls, "prepare", lambda self, p: prepared.append(p.name) or prepare(self, p))
    main(args)
    return prepared
