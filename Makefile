# The two commands of the README: `make run` and `make test`.
.PHONY: run test lint bench demo

run:
	@scripts/bootstrap.sh run
	.venv/bin/pactvault run

test:
	@scripts/bootstrap.sh test
	.venv/bin/ruff check src tests $(wildcard bench)
	.venv/bin/python -m pytest

lint:
	.venv/bin/ruff check src tests $(wildcard bench)

demo:
	@scripts/bootstrap.sh run
	.venv/bin/pactvault demo --out demo-out

bench:
	@scripts/bootstrap.sh test
	.venv/bin/python bench/sign.py
