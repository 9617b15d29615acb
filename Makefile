# ai-chat-fcgi.  `make run` and `make test` install what is missing (Debian 12, as root), build, and
# serve or test.  See README.md.

PORT ?= 8080
# make install: into $(DESTDIR)$(PREFIX); the binary reads $(SYSCONFDIR)/ai-chat-fcgi/ai-chat.env by default.
PREFIX ?= /usr/local
SYSCONFDIR ?= $(PREFIX)/etc
PYTHON ?= /usr/bin/python3
CC = gcc
CFLAGS ?= -O2 -g
CFLAGS += -std=c11 -Wall -Wextra -Werror -D_GNU_SOURCE -pthread -fno-strict-aliasing \
	$(shell pkg-config --cflags json-c 2>/dev/null) -I/usr/include/postgresql -DAC_SYSCONF_FILE='"$(SYSCONFDIR)/ai-chat-fcgi/ai-chat.env"'
LDLIBS = -lfcgi -lsqlite3 -lpq -lcurl -lsodium -ljwt $(shell pkg-config --libs json-c 2>/dev/null || echo -ljson-c) -pthread
# make test SANITIZE=1: everything built and run under AddressSanitizer and UndefinedBehaviorSanitizer.
ifeq ($(SANITIZE),1)
CFLAGS += -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
LDLIBS += -fsanitize=address,undefined
export ASAN_OPTIONS = abort_on_error=0:detect_leaks=1:exitcode=86
export UBSAN_OPTIONS = print_stacktrace=1:halt_on_error=1
endif

# Debian packages: what building, running and testing need, and what only the benchmark needs.
PACKAGES = gcc make libc6-dev pkg-config libfcgi-dev libsqlite3-dev libjson-c-dev libcurl4-openssl-dev \
	libcmocka-dev ca-certificates nginx-light python3 python3-jsonschema curl chromium chromium-driver \
	lighttpd spawn-fcgi apache2 libapache2-mod-fcgid man-db libfaketime gdb strace libpq-dev postgresql pgbouncer \
	python3-psycopg2 libsodium-dev libjwt-dev apache2-utils prometheus
BENCH_PACKAGES = wrk
# What make deb needs (Debian's packaging tools), and the package test (a Debian root to install into).
DEB_PACKAGES = debhelper dpkg-dev fakeroot lintian debootstrap

COMMON_SRC = common/buf.c common/config.c common/err.c common/json.c common/log.c common/metrics.c common/models.c \
	common/limits.c common/provider.c common/db.c common/db_sqlite.c common/db_pg.c common/db_pg_pool.c common/repo.c \
	common/repo_ops.c common/repo_send.c common/repo_tree.c common/repo_users.c common/repo_keys.c common/repo_search.c \
	common/repo_export.c common/auth.c \
	common/sse.c common/title.c common/util.c common/valid.c
FCGI_SRC = fcgi/auto_title.c fcgi/chat.c fcgi/chat_routes.c fcgi/cli_backup.c fcgi/cli_db.c fcgi/cli_user.c fcgi/h_admin.c \
	fcgi/h_auth.c fcgi/h_keys.c fcgi/listen_tcp.c fcgi/handlers.c fcgi/http.c fcgi/identity.c fcgi/io.c fcgi/loop.c fcgi/loop_wire.c \
	fcgi/monitor.c fcgi/openai.c fcgi/openai_request.c fcgi/pages.c fcgi/record.c fcgi/reqlog.c fcgi/request.c \
	fcgi/response.c fcgi/retention.c fcgi/router.c fcgi/search.c fcgi/export.c fcgi/import.c fcgi/send_limits.c fcgi/server.c fcgi/watch.c
SQL_SQLITE = $(sort $(wildcard sql/sqlite/*.sql))
SQL_PG = $(sort $(wildcard sql/postgres/*.sql))
COMMON_OBJ = $(COMMON_SRC:%.c=build/%.o) build/migrations.o build/models_default.o
DOC_OBJ = build/openapi_doc.o
FCGI_OBJ = $(FCGI_SRC:%.c=build/%.o)
HEADERS = $(wildcard common/*.h fcgi/*.h)
UNIT_TESTS = $(patsubst tests/unit/%.c,build/tests/%,$(wildcard tests/unit/test_*.c))
FUZZ_TARGETS = body target sse token
REPLAYS = $(FUZZ_TARGETS:%=build/tests/replay_%)
FUZZ_SECONDS ?= 60

.PHONY: all deps docs sdk run test unit e2e bench fuzz clean install uninstall test-deploy valgrind soak deb FORCE
SHELL = /bin/bash
.DELETE_ON_ERROR:

all: build/ai-chat-fcgi

# Installs the Debian packages that are missing (as root), or says which to install.
deps:
	@missing=""; for p in $(PACKAGES) $(EXTRA_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	command -v npm >/dev/null 2>&1 || missing="$$missing nodejs npm"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" != 0 ]; then echo "deps: missing Debian packages:$$missing (run as root, or apt-get install them)"; exit 1; fi; \
		echo "deps: installing with apt-get:$$missing"; \
		guard=""; if [ ! -e /usr/sbin/policy-rc.d ]; then \
			printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && guard=1; fi; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
		rc=$$?; [ -n "$$guard" ] && rm -f /usr/sbin/policy-rc.d; \
		[ $$rc = 0 ] || { echo "deps: apt-get install failed"; exit 1; }; \
	fi

build/ai-chat-fcgi: build/fcgi/main.o $(FCGI_OBJ) $(COMMON_OBJ) $(DOC_OBJ)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Objects remember the flags they were built with: changing them (SANITIZE=1) rebuilds everything.
build/.flags: FORCE
	@mkdir -p build
	@echo '$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) $(LDLIBS)' | cmp -s - $@ || \
		echo '$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) $(LDLIBS)' > $@

build/%.o: %.c $(HEADERS) build/.flags
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

# The schema scripts of each engine, compiled in as strings, in file-name order.
define migrations_table
	echo 'const struct ac_migration $(1)[] = {'; \
	for f in $(2); do \
		n=$$(basename $$f .sql); v=$$(echo "$$n" | sed -e 's/_.*//' -e 's/^0*//'); \
		printf '\t{ %s, "%s",\n' "$$v" "$$n"; \
		sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/\t"/' -e 's/$$/\\n"/' $$f; \
		printf '\t},\n'; \
	done; \
	echo '	{ 0, NULL, NULL }'; \
	echo '};'; \
	echo 'const size_t $(1)_count = sizeof($(1)) / sizeof($(1)[0]) - 1;'
endef

build/migrations.c: $(SQL_SQLITE) $(SQL_PG) Makefile
	@mkdir -p build
	@{ echo '#include "../common/db_engine.h"'; \
	   $(call migrations_table,ac_migrations_sqlite,$(SQL_SQLITE)); \
	   $(call migrations_table,ac_migrations_pg,$(SQL_PG)); } > $@

build/migrations.o: build/migrations.c common/db_engine.h common/db.h build/.flags
	$(CC) $(CFLAGS) -c -o $@ $<

# conf/models.conf, compiled in for when no registry file is configured or found.
build/models_default.c: conf/models.conf Makefile
	@mkdir -p build
	@{ echo '#include "../common/models.h"'; echo 'const char ac_models_default[] ='; \
	   sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/\t"/' -e 's/$$/\\n"/' $<; echo ';'; } > $@

build/models_default.o: build/models_default.c common/models.h build/.flags
	$(CC) $(CFLAGS) -c -o $@ $<

# The OpenAPI document, served by the worker at /openapi.json, as bytes.
build/openapi_doc.c: conf/docs/openapi.json Makefile
	@mkdir -p build
	@{ echo '#include <stddef.h>'; echo 'const char ac_openapi_doc[] = {'; \
	   od -An -v -tu1 $< | sed -e 's/  */,/g' -e 's/^,//' -e 's/$$/,/'; echo '0 };'; \
	   echo 'const size_t ac_openapi_doc_len = sizeof(ac_openapi_doc) - 1;'; } > $@

build/openapi_doc.o: build/openapi_doc.c build/.flags
	$(CC) $(CFLAGS) -c -o $@ $<

build/tests/%: tests/unit/%.c $(COMMON_OBJ) build/fcgi/http.o build/fcgi/record.o $(HEADERS) build/.flags
	@mkdir -p build/tests
	$(CC) $(CFLAGS) -o $@ $< $(COMMON_OBJ) build/fcgi/http.o build/fcgi/record.o $(LDLIBS) -lcmocka

# A fuzz target run over its corpus in tests/fuzz/corpus/ with the ordinary compiler (make test).
build/tests/replay_%: tests/fuzz/fuzz_%.c tests/fuzz/replay.c $(COMMON_OBJ) build/fcgi/http.o $(HEADERS) build/.flags
	@mkdir -p build/tests
	$(CC) $(CFLAGS) -DCORPUS_DIR='"tests/fuzz/corpus/$*"' -o $@ tests/fuzz/fuzz_$*.c tests/fuzz/replay.c \
		$(COMMON_OBJ) build/fcgi/http.o $(LDLIBS)

# make fuzz: each target under libFuzzer (clang) for FUZZ_SECONDS, starting from a copy of its corpus;
# inputs worth keeping are left in build/fuzz/corpus-NAME.
FUZZ_SRC = $(COMMON_SRC) fcgi/http.c build/migrations.c build/models_default.c
fuzz: build/migrations.c build/models_default.c
	@$(MAKE) --no-print-directory deps EXTRA_PACKAGES="clang libclang-rt-14-dev"
	@mkdir -p build/fuzz
	@for t in $(FUZZ_TARGETS); do \
		clang -g -O1 -std=c11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined $(shell pkg-config --cflags json-c) \
			-o build/fuzz/fuzz_$$t tests/fuzz/fuzz_$$t.c $(FUZZ_SRC) $(LDLIBS) || exit 1; \
		rm -rf build/fuzz/corpus-$$t; cp -r tests/fuzz/corpus/$$t build/fuzz/corpus-$$t; \
		echo "== fuzz_$$t for $(FUZZ_SECONDS) s"; \
		build/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -timeout=10 \
			-artifact_prefix=build/fuzz/crash-$$t- build/fuzz/corpus-$$t 2>&1 | grep -E "^#[0-9]+ +DONE|Done [0-9]+ runs|ERROR|SUMMARY" ; \
		test $${PIPESTATUS[0]} -eq 0 || exit 1; \
	done

build/bench-trivial: tests/bench/trivial.c build/.flags
	@mkdir -p build
	$(CC) $(CFLAGS) -o $@ $< -lfcgi -pthread

# The documentation's assets and the OpenAPI linter, from the npm registry as package-lock.json pins them.
docs: conf/docs/node_modules/.package-lock.json conf/ui/node_modules/.package-lock.json

conf/docs/node_modules/.package-lock.json: conf/docs/package.json conf/docs/package-lock.json
	cd conf/docs && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# The chat page's two packages (marked, DOMPurify), pinned in conf/ui/package-lock.json.
conf/ui/node_modules/.package-lock.json: conf/ui/package.json conf/ui/package-lock.json
	cd conf/ui && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# The official openai npm package the OpenAI-compatible routes are tested with (tests/e2e/test_openai.py),
# as tests/openai/package-lock.json pins it.
sdk: tests/openai/node_modules/.package-lock.json

tests/openai/node_modules/.package-lock.json: tests/openai/package.json tests/openai/package-lock.json
	cd tests/openai && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

run: deps
	@$(MAKE) --no-print-directory all docs
	PORT=$(PORT) conf/stack.sh

test: deps
	@$(MAKE) --no-print-directory deps EXTRA_PACKAGES="$(DEB_PACKAGES)"
	@$(MAKE) --no-print-directory all docs sdk $(UNIT_TESTS) $(REPLAYS)
	@PYTHON=$(PYTHON) tests/run.sh $(UNIT_TESTS) $(REPLAYS)

unit: $(UNIT_TESTS) $(REPLAYS)
	@tests/run.sh --unit-only $(UNIT_TESTS) $(REPLAYS)

bench:
	@$(MAKE) --no-print-directory deps EXTRA_PACKAGES="$(BENCH_PACKAGES)"
	@$(MAKE) --no-print-directory all build/bench-trivial
	tests/bench/bench.sh
	$(PYTHON) tests/bench/chat_bench.py
	$(PYTHON) tests/bench/loop_bench.py
	$(PYTHON) tests/bench/search_bench.py
	$(PYTHON) tests/bench/auth_bench.py

# make deb: build/deb/ai-chat-fcgi_<version>_<arch>.deb, built by dpkg-buildpackage from conf/debian/
# (copied into a copy of the tree) and checked by lintian (conf/deb.sh).
deb: deps docs
	@$(MAKE) --no-print-directory deps EXTRA_PACKAGES="$(DEB_PACKAGES)"
	conf/deb.sh

# Installs under $(DESTDIR)$(PREFIX) (conf/install.sh lists what goes where); uninstall removes it
# again but keeps the settings file and the databases.
install: all
	PREFIX='$(PREFIX)' SYSCONFDIR='$(SYSCONFDIR)' DESTDIR='$(DESTDIR)' conf/install.sh install

uninstall:
	PREFIX='$(PREFIX)' SYSCONFDIR='$(SYSCONFDIR)' DESTDIR='$(DESTDIR)' conf/install.sh uninstall

# Only the deployment tests (lighttpd, CGI, spawn-fcgi, socket activation, make install, Apache);
# make test runs them too.
test-deploy: deps
	@$(MAKE) --no-print-directory all docs
	$(PYTHON) tests/deploy/run.py

# make valgrind: the unit tests and corpus replays under valgrind's memcheck, then part of the e2e suite
# against workers run under it (tests/valgrind/run.sh); any memory error or definite/indirect leak fails.
valgrind:
	@$(MAKE) --no-print-directory deps EXTRA_PACKAGES="valgrind"
	@$(MAKE) --no-print-directory all docs $(UNIT_TESTS) $(REPLAYS)
	@PYTHON=$(PYTHON) tests/valgrind/run.sh $(UNIT_TESTS) $(REPLAYS)

# make soak: SOAK_SECONDS (default 300) of mixed traffic against the stack and the fake provider
# (tests/soak/run.py); fails on any unexpected answer or on growth of a worker's memory.
SOAK_SECONDS ?= 300
# and the model-based test of sends (tests/model/run.py) with many more seeds and steps than make test's
SOAK_MODEL_SEEDS ?= 50
SOAK_MODEL_STEPS ?= 300
soak: deps
	@$(MAKE) --no-print-directory all docs
	@SOAK_SECONDS=$(SOAK_SECONDS) $(PYTHON) tests/soak/run.py
	$(PYTHON) tests/model/run.py --seeds $(SOAK_MODEL_SEEDS) --steps $(SOAK_MODEL_STEPS)

clean:
	rm -rf build run
