# recd: one binary (bin/recd), one test runner (bin/recd-tests).
#   make            build bin/recd
#   make test       install missing deps, build, run every test; closes with "N passed, N failed, N skipped"
#   make asan       the same suite under AddressSanitizer + UBSan (objects in build-asan/)
#   make demo       install deps, build, train two small models, serve them, run the README curl examples
#   make fuzz       build the libFuzzer targets (clang) into build-fuzz/
#   make fuzz-smoke make fuzz, then run every target FUZZ_SECONDS (5) s on a copy of fuzz/corpus/NAME (CI)
#   make O=DIR ...  put objects and binaries under DIR (parallel builds in one tree)
#   make T=prefix test   run only the tests whose name starts with prefix
O        ?= .
CC       ?= cc
PKGS     := openblas libmicrohttpd jansson lmdb libuv zlib
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
OPT      ?= -O2 -g
SAN      ?=
ALL_CFLAGS = $(OPT) $(SAN) -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -I. $(PKG_CFLAGS) -pthread \
             -DRECD_VERSION=\"$(VERSION)\" $(CFLAGS)
LDLIBS   += $(PKG_LIBS) -lm -pthread
TEST_LDLIBS := $(shell pkg-config --libs libcurl 2>/dev/null)
VERSION  := $(shell cat VERSION 2>/dev/null || echo 0.0.0)

LIB_SRC  := $(sort $(wildcard core/*.c models/*.c trainer/*.c api/*.c server/*.c))
TEST_SRC := $(sort $(wildcard tests/*.c))
OBJDIR   := $(O)/obj
LIB_OBJ  := $(LIB_SRC:%.c=$(OBJDIR)/%.o)
TEST_OBJ := $(TEST_SRC:%.c=$(OBJDIR)/%.o)
BIN      := $(O)/bin/recd
TESTBIN  := $(O)/bin/recd-tests
FAULTLIB := $(O)/bin/libfaultinj.so
LIBA     := $(OBJDIR)/librecd.a

.PHONY: all test asan demo deps fuzz fuzz-smoke clean check-deps format
all: $(BIN)

$(OBJDIR)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

# ui/NAME.html is embedded in the library as `const unsigned char ui_NAME_html[]` (NUL-terminated) and
# `const size_t ui_NAME_html_len`, turned into C by od and sed (no other tool): server/ui.c serves it.
UI_SRC   := $(sort $(wildcard ui/*.html))
UI_OBJ   := $(UI_SRC:%.html=$(OBJDIR)/%_html.o)

$(OBJDIR)/ui/%_html.c: ui/%.html
	@mkdir -p $(dir $@)
	@{ echo "/* generated from $< by the Makefile: do not edit */"; echo "#include <stddef.h>"; \
	  echo "extern const unsigned char ui_$(subst -,_,$*)_html[];"; echo "extern const size_t ui_$(subst -,_,$*)_html_len;"; \
	  echo "const unsigned char ui_$(subst -,_,$*)_html[] = {"; \
	  od -An -v -tx1 $< | sed 's/\([0-9a-f][0-9a-f]\)/0x\1,/g'; echo "0x00};"; \
	  echo "const size_t ui_$(subst -,_,$*)_html_len = sizeof ui_$(subst -,_,$*)_html - 1;"; } > $@.tmp && mv $@.tmp $@

$(OBJDIR)/ui/%_html.o: $(OBJDIR)/ui/%_html.c
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(LIBA): $(LIB_OBJ) $(UI_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BIN): $(OBJDIR)/main.o $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(TESTBIN): $(TEST_OBJ) $(LIBA) | $(FAULTLIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(TEST_LDLIBS)

# The fault-injection shim the tests LD_PRELOAD (tests/fault/faultinj.c). Never sanitized: it is
# preloaded into sanitized and plain binaries alike (with ASAN_OPTIONS=verify_asan_link_order=0).
$(FAULTLIB): tests/fault/faultinj.c
	@mkdir -p $(dir $@)
	$(CC) $(OPT) -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -fPIC -shared -pthread -o $@ $< -ldl

# deps: install the Debian packages recd needs, only those that are missing. chromium: the experiment
# page's test (tests/test_ui_chromium.c; skipped when it is absent).
DEB_PKGS := build-essential pkg-config libmicrohttpd-dev libjansson-dev libopenblas-dev liblmdb-dev \
            libuv1-dev zlib1g-dev libcurl4-openssl-dev curl wrk lmdb-utils chromium
deps:
	@missing=""; for p in $(DEB_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null || exit 1; \
	fi

test: deps
	@$(MAKE) --no-print-directory $(BIN) $(TESTBIN)
	@RECD_BIN=$(abspath $(BIN)) $(TESTBIN) $(T)

asan: deps
	@$(MAKE) --no-print-directory O=build-asan OPT="-O1 -g" \
	  SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	  build-asan/bin/recd build-asan/bin/recd-tests
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  RECD_BIN=$(abspath build-asan/bin/recd) RECD_ASAN=1 build-asan/bin/recd-tests $(T)

demo: deps
	@$(MAKE) --no-print-directory $(BIN)
	@RECD_BIN=$(abspath $(BIN)) sh bench/demo.sh

FUZZ_SRC := $(sort $(wildcard fuzz/fuzz_*.c))
FUZZ_SAN := -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
# fuzz: the library is built once with clang's sanitizer coverage, then each target links against it.
#   build-fuzz/bin/fuzz_csv -max_total_time=60 CORPUS_DIR fuzz/corpus/fuzz_csv
# fuzz/corpus/NAME holds a few seed inputs per target (read-only: give libFuzzer a scratch corpus
# directory first, it writes new inputs into the first one).
fuzz:
	@command -v clang >/dev/null || { echo "make fuzz needs clang (apt-get install clang)"; exit 1; }
	@$(MAKE) --no-print-directory O=build-fuzz CC=clang OPT="-O1 -g" SAN="$(FUZZ_SAN)" build-fuzz/obj/librecd.a
	@mkdir -p build-fuzz/bin
	@for f in $(FUZZ_SRC); do n=$$(basename $$f .c); echo "fuzz target build-fuzz/bin/$$n"; \
	  clang $(ALL_CFLAGS) -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	    -o build-fuzz/bin/$$n $$f build-fuzz/obj/librecd.a $(LDLIBS) || exit 1; done

# fuzz-smoke: every target for FUZZ_SECONDS seconds on a scratch copy of its seeds (build-fuzz/smoke/NAME;
# fuzz/corpus is not modified). Fails on the first crash, sanitizer report, leak, timeout (10 s per
# input) or RSS over 2 GB, printing the end of the target's log; the reproducer is left in
# build-fuzz/smoke/ (replay it: build-fuzz/bin/NAME build-fuzz/smoke/crash-...).
FUZZ_SECONDS ?= 5
fuzz-smoke: fuzz
	@rm -rf build-fuzz/smoke && mkdir -p build-fuzz/smoke
	@for f in $(FUZZ_SRC); do n=$$(basename $$f .c); d=build-fuzz/smoke/$$n; mkdir -p $$d; \
	  if [ -d fuzz/corpus/$$n ]; then cp fuzz/corpus/$$n/* $$d/; fi; \
	  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 build-fuzz/bin/$$n -max_total_time=$(FUZZ_SECONDS) \
	    -timeout=10 -rss_limit_mb=2048 -artifact_prefix=build-fuzz/smoke/ $$d > $$d.log 2>&1 \
	    || { echo "fuzz-smoke: $$n FAILED (log: $$d.log)"; tail -n 60 $$d.log; \
	         ls build-fuzz/smoke/*-* 2>/dev/null; exit 1; }; \
	  runs=$$(grep -o 'Done [0-9]* runs' $$d.log | tail -n 1 | cut -d' ' -f2); \
	  echo "fuzz-smoke: $$n ok, $$runs runs"; \
	done

format:
	clang-format -i $(LIB_SRC) $(TEST_SRC) main.c $(wildcard */*.h)

clean:
	rm -rf obj bin build-asan build-fuzz

-include $(LIB_OBJ:.o=.d) $(TEST_OBJ:.o=.d) $(OBJDIR)/main.d
