# SPDX-License-Identifier: Apache-2.0
# bongsu — one non-recursive GNU Makefile.
#
#   make                 build build/$(MODE)/bongsu (MODE=release|debug|asan)
#   make run             install what is missing, build, start bongsu on :9090
#   make check           install what is missing, then every test (unit in
#                        release and ASan/UBSan, fuzz corpora, end-to-end)
#   make unit            unit tests of this MODE     make test-<module>
#   make bench           benchmarks (figures, never pass/fail)
#   make fuzz            libFuzzer builds (clang) of every fuzz target
#
# Objects go under build/$(MODE)/ (override with BUILD=dir). Each module is
# an archive; a unit test links its module and the modules below it only,
# which keeps the layering honest: util <- labels <- {expfmt, tsdb} <- promql
# <- {config, scrape, http} <- cmd.

MODE ?= release
BUILD ?= build/$(MODE)
CC ?= gcc
PYTHON ?= /usr/bin/python3

PKGS := libcurl libmicrohttpd yaml-0.1 libpcre2-8 libxxhash libzstd zlib snappy libprotobuf-c libfreeipmi libipmimonitoring
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CMOCKA_LIBS := $(shell pkg-config --libs cmocka 2>/dev/null)

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wno-unused-parameter
ifeq ($(CI),true)
WARN += -Werror
endif
ifdef WERROR
WARN += -Werror
endif
CFLAGS_BASE := -std=c11 -D_GNU_SOURCE -pthread -Isrc -MMD -MP $(WARN) $(PKG_CFLAGS)
ifeq ($(MODE),release)
OPT := -O2 -g
else ifeq ($(MODE),debug)
OPT := -O0 -g3
else ifeq ($(MODE),asan)
OPT := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else
$(error MODE must be release, debug or asan)
endif
ALL_CFLAGS := $(CFLAGS_BASE) $(OPT) $(CFLAGS)
ALL_LDFLAGS := -pthread $(filter -fsanitize=%,$(OPT)) $(LDFLAGS)
LIBS := $(PKG_LIBS) -lresolv -lm

# Modules, lowest layer last within each closure (static link order).
MODULES := util labels expfmt tsdb promql config scrape http ingest ipmi rules cmd
DEPS_util :=
DEPS_labels := util
DEPS_expfmt := labels util
DEPS_tsdb := labels util
DEPS_promql := tsdb labels util
DEPS_config := labels util
DEPS_scrape := config expfmt tsdb labels util
DEPS_http := promql tsdb labels util
DEPS_ingest := expfmt tsdb labels util
DEPS_ipmi := tsdb labels util
DEPS_rules := promql tsdb labels util
DEPS_cmd := http ingest ipmi rules scrape config promql expfmt tsdb labels util

lib_of = $(BUILD)/lib/lib$(1).a
libs_for = $(call lib_of,$(1)) $(foreach d,$(DEPS_$(1)),$(call lib_of,$(d)))

# Library sources: every src/<module>/*.c except program mains (*_main.c).
define module_rules
SRCS_$(1) := $$(filter-out %_main.c,$$(wildcard src/$(1)/*.c))
OBJS_$(1) := $$(SRCS_$(1):%.c=$(BUILD)/%.o)
$(call lib_of,$(1)): $$(OBJS_$(1)) $(BUILD)/empty.o
	@mkdir -p $$(@D)
	@rm -f $$@
	$$(AR) rcs $$@ $$^
endef
$(foreach m,$(MODULES),$(eval $(call module_rules,$(m))))

PROGRAMS := $(BUILD)/bongsu $(if $(wildcard src/cmd/bongsutool_main.c),$(BUILD)/bongsutool)
$(BUILD)/bongsutool: $(BUILD)/src/cmd/bongsutool_main.o $(call libs_for,cmd)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)
GIT_REV := $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
GIT_BRANCH := $(shell git rev-parse --abbrev-ref HEAD 2>/dev/null || echo unknown)
$(BUILD)/src/cmd/bongsu_main.o $(BUILD)/src/cmd/bongsutool_main.o: ALL_CFLAGS += -DBS_REVISION='"$(GIT_REV)"' -DBS_BRANCH='"$(GIT_BRANCH)"' \
	-DBS_BUILD_USER='"$(shell id -un)@$(shell hostname)"' -DBS_BUILD_DATE='"$(shell date -u +%Y%m%d-%H:%M:%S)"'
$(BUILD)/bongsu: $(BUILD)/src/cmd/bongsu_main.o $(call libs_for,cmd)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/empty.o:
	@mkdir -p $(@D)
	echo 'static int bs_empty_unit_;' | $(CC) -x c -c -o $@ -

# The PromQL conformance runner over ../shared/testdata/promql/*.test.
PROMQLTEST_SRCS := $(wildcard tests/promqltest/*.c)
$(BUILD)/promqltest: $(PROMQLTEST_SRCS:%.c=$(BUILD)/%.o) $(call libs_for,promql)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

promql-conformance: $(BUILD)/promqltest
	$(BUILD)/promqltest $(PROMQLTEST_ARGS) ../shared/testdata/promql

# The OpenMetrics parser suite over ../shared/testdata/openmetrics/parsers.
OMTEST_SRCS := $(wildcard tests/omtest/*.c)
$(BUILD)/omtest: $(OMTEST_SRCS:%.c=$(BUILD)/%.o) $(call libs_for,expfmt)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

openmetrics-conformance: $(BUILD)/omtest
	$(BUILD)/omtest ../shared/testdata/openmetrics/parsers

# Unit tests: tests/unit/test_<module>[_<part>].c links that module's closure.
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
module_of = $(word 2,$(subst _, ,$(basename $(notdir $(1)))))
define unit_rule
$(BUILD)/tests/$(basename $(notdir $(1))): $(BUILD)/$(basename $(1)).o $$(call libs_for,$(call module_of,$(1)))
	@mkdir -p $$(@D)
	$$(CC) $$(ALL_LDFLAGS) -o $$@ $$^ $$(LIBS) $$(CMOCKA_LIBS)
endef
$(foreach t,$(UNIT_SRCS),$(eval $(call unit_rule,$(t))))

# Fuzz targets: fuzz/fuzz_<module>_<what>.c defining LLVMFuzzerTestOneInput.
# For `make check` each is linked with a replay driver (gcc, sanitizers of
# this MODE) and run over fuzz/corpus/<what>/ plus its seed inputs.
FUZZ_SRCS := $(wildcard fuzz/fuzz_*.c)
FUZZ_REPLAY := $(FUZZ_SRCS:fuzz/%.c=$(BUILD)/fuzz/%)
define fuzz_rule
$(BUILD)/fuzz/$(basename $(notdir $(1))): $(BUILD)/$(basename $(1)).o $(BUILD)/fuzz/replay_driver.o $$(call libs_for,$(call module_of,$(1)))
	@mkdir -p $$(@D)
	$$(CC) $$(ALL_LDFLAGS) -o $$@ $$^ $$(LIBS)
endef
$(foreach t,$(FUZZ_SRCS),$(eval $(call fuzz_rule,$(t))))
$(BUILD)/fuzz/replay_driver.o: fuzz/replay_driver.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

# Benchmarks: bench/bench_<module>_<what>.c, always built with -O2.
BENCH_SRCS := $(wildcard bench/bench_*.c)
BENCH_BINS := $(BENCH_SRCS:bench/%.c=$(BUILD)/bench/%)
define bench_rule
$(BUILD)/bench/$(basename $(notdir $(1))): $(BUILD)/$(basename $(1)).o $$(call libs_for,$(call module_of,$(1)))
	@mkdir -p $$(@D)
	$$(CC) $$(ALL_LDFLAGS) -o $$@ $$^ $$(LIBS)
endef
$(foreach t,$(BENCH_SRCS),$(eval $(call bench_rule,$(t))))

.PHONY: all deps run check unit fuzz-replay fuzz bench e2e clean format promql-conformance openmetrics-conformance
.DEFAULT_GOAL := all
all: $(PROGRAMS)

deps:
	@scripts/deps.sh

run: deps
	@$(MAKE) --no-print-directory MODE=release all
	./build/release/bongsu $(ARGS)

unit: $(UNIT_BINS)
	@scripts/run-unit.sh $(UNIT_BINS)

test-%: $(BUILD)/tests/test_%
	@scripts/run-unit.sh $(filter $(BUILD)/tests/test_$*%,$(UNIT_BINS))

fuzz-replay: $(FUZZ_REPLAY)
	@scripts/run-fuzz-replay.sh $(FUZZ_REPLAY)

bench: $(BENCH_BINS)
	@for b in $(BENCH_BINS); do echo "== $$b"; $$b || exit 1; done

e2e: all
	BONGSU_BIN=$(abspath $(BUILD)/bongsu) $(PYTHON) -m pytest -q tests/e2e $(PYTEST_ARGS)

check:
	@scripts/deps.sh --test
	@scripts/check.sh

fuzz:
	@scripts/build-libfuzzer.sh

clean:
	rm -rf build

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
