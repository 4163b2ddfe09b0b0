# Thin wrappers: dev.py does the work, so a machine without make runs the same.
.PHONY: run test bench ci
run:
	python3 dev.py run
test:
	python3 dev.py test
bench:
	python3 dev.py bench
ci:
	bash .ci/run
