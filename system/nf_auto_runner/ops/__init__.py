"""Operations commands (`python -m nf_auto_runner.ops <command>`)."""
