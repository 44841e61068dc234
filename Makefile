# shieldd: one non-recursive Makefile. Build outputs go to build/.
#
#   make            build shieldd, shieldctl and the libraries
#   make test       set up, build, run every test (Check suites, then integration tests)
#   make run        set up, build, start shieldd in the foreground on the demo model
#   make bench      benchmarks (docs/BENCHMARKS.md)
#   make bench-compare LLAMA_CPP_BIN=DIR   the same GGUF files through shieldd and llama.cpp
#   make fuzz       build the libFuzzer targets with clang and run each FUZZ_SECONDS (default 60)
#   make soak       the daemon under a mixed load for SOAK_SECONDS (default 600), checked for growth
#   make SANITIZE=address,undefined test    the same tests under sanitizers
#   make WERROR=1   warnings are errors (CI)
#
# Sources are discovered by folder, so a new module is a new file, not a Makefile edit:
#   engine/*/*.c          -> build/libsgengine.a   (transformer core, tokenizer, model files);
#                            engine/include/ holds its public headers, sg_engine.h and sg_tok.h
#   policies/*.c          -> build/libsgpolicy.a   (policy YAML, prompt rendering, moderation)
#   daemon/*.c but main.c -> build/libshieldd.a    (so unit tests can link daemon modules)
#   clients/lib/*.c       -> build/libshieldclient.a
#   clients/shieldctl/ctl_NAME.c defines `int ctl_NAME(int argc, char **argv)` and
#                            `const char ctl_NAME_help[]`; it becomes `shieldctl NAME`.
#   tests/check_NAME.c    defines `Suite *NAME_suite(void)`; it joins build/check_shieldd.
#   tests/fuzz/fuzz_NAME.c  a libFuzzer target (LLVMFuzzerTestOneInput) -> build/fuzz/fuzz_NAME.

CC       ?= cc
CFLAGS   ?= -O2 -g
PREFIX   ?= /usr/local
DESTDIR  ?=
comma    := ,
# A sanitized build gets its own folder unless BUILD is given (sanitized and plain objects must
# not mix): SANITIZE=address,undefined -> build/san-address-undefined.
ifeq ($(origin BUILD)$(SANITIZE),undefined)
BUILD     = build
else ifeq ($(origin BUILD),undefined)
BUILD     = build/san-$(subst $(comma),-,$(SANITIZE))
endif
FUZZ_SECONDS ?= 60
SOAK_SECONDS ?= 600
SOAK_CI_SECONDS ?= 60
PYTHON   ?= /usr/bin/python3

WARN      = -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
            -Wpointer-arith -Wformat=2 -Wundef -Wvla
CPPFLAGS += -MMD -MP -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -I$(BUILD)/gen
# Include paths by area (set per object below): the libraries see only what is below them.
INC       = -Iengine/include -Ipolicies -Idaemon -Iclients/lib
PKGS      = libevent libevent_pthreads jansson yaml-0.1
HAVE_SYSTEMD := $(shell pkg-config --exists libsystemd 2>/dev/null && echo 1)
ifeq ($(HAVE_SYSTEMD),1)
PKGS     += libsystemd
CPPFLAGS += -DSG_HAVE_SYSTEMD=1
endif
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null)
DNNL_LIBS   = -ldnnl
ALL_CFLAGS  = -std=c11 $(WARN) $(CFLAGS) $(PKG_CFLAGS) -pthread
ALL_LDFLAGS = $(LDFLAGS) -pthread
LIBS        = $(PKG_LIBS) $(DNNL_LIBS) -lm

ifneq ($(SANITIZE),)
ALL_CFLAGS  += -fsanitize=$(SANITIZE) -fno-sanitize-recover=all -fno-omit-frame-pointer
ALL_LDFLAGS += -fsanitize=$(SANITIZE)
endif
ALL_CFLAGS += $(if $(filter 1,$(WERROR)),-Werror)

ifeq ($(V),1)
Q =
msg = @true
else
Q = @
msg = @printf '  %-6s %s\n' $(1) $(2)
endif

ENGINE_SRC  := $(sort $(wildcard engine/*/*.c))
POLICY_SRC  := $(sort $(wildcard policies/*.c))
DAEMON_SRC  := $(sort $(filter-out daemon/main.c,$(wildcard daemon/*.c)))
CLIENT_SRC  := $(sort $(wildcard clients/lib/*.c))
CTL_SRC     := $(sort $(wildcard clients/shieldctl/*.c))
CTL_CMDS    := $(sort $(patsubst clients/shieldctl/ctl_%.c,%,$(wildcard clients/shieldctl/ctl_*.c)))
TEST_SRC    := $(sort $(wildcard tests/check_*.c))
TEST_SUITES := $(sort $(filter-out main,$(patsubst tests/check_%.c,%,$(TEST_SRC))))
TESTLIB_SRC := $(sort $(wildcard tests/lib/*.c))
TOOL_SRC    := $(sort $(wildcard tools/*.c))
FUZZ_SRC    := $(sort $(wildcard tests/fuzz/fuzz_*.c))

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

# The engine's layers, lowest first (docs/ENGINE.md). A folder's sources see only its own
# headers, the public ones (engine/include) and those of the folders it is built on, so an
# include that climbs a layer does not compile. Tests, tools and fuzz targets see every folder.
ENGINE_LAYERS   = base format tok mm model fwd
ENGINE_BELOW_base   =
ENGINE_BELOW_format = base
ENGINE_BELOW_tok    = base format
ENGINE_BELOW_mm     = base
ENGINE_BELOW_model  = base format tok mm
ENGINE_BELOW_fwd    = base mm model
ENGINE_ALL_INC  = $(foreach d,$(ENGINE_LAYERS),-Iengine/$(d))
$(foreach d,$(ENGINE_LAYERS),$(eval $(call obj,$(wildcard engine/$(d)/*.c)): \
    INC = -Iengine/include $(foreach x,$(d) $(ENGINE_BELOW_$(d)),-Iengine/$(x))))
$(call obj,$(POLICY_SRC)): INC = -Iengine/include -Ipolicies
$(call obj,$(TEST_SRC) $(TESTLIB_SRC) $(TOOL_SRC)): INC += $(ENGINE_ALL_INC)

LIB_ENGINE  = $(BUILD)/libsgengine.a
LIB_POLICY  = $(BUILD)/libsgpolicy.a
LIB_DAEMON  = $(BUILD)/libshieldd.a
LIB_CLIENT  = $(BUILD)/libshieldclient.a
SHIELDD     = $(BUILD)/shieldd
SHIELDCTL   = $(BUILD)/shieldctl
CHECK_BIN   = $(BUILD)/check_shieldd
TOOLS       = $(patsubst tools/%.c,$(BUILD)/tools/%,$(TOOL_SRC))
GEN         = $(BUILD)/gen/ctl_cmds.h $(BUILD)/gen/suites.h

# Link order: dependents first.
CORE_LIBS   = $(LIB_POLICY) $(LIB_ENGINE)

.PHONY: all setup test check run bench bench-compare fuzz fuzz-seeds fuzz-bins soak install clean fmt asan valgrind demo-model

# all: the daemon, the CLI, the tools and the test runner
all: $(if $(wildcard daemon/main.c),$(SHIELDD)) $(SHIELDCTL) $(TOOLS) $(CHECK_BIN)

# setup: install missing Debian and npm packages (quiet when all is there); skip with NO_SETUP=1
setup:
ifneq ($(NO_SETUP),1)
	@sh tools/setup.sh
endif

$(BUILD)/obj/%.o: %.c | $(GEN)
	$(call msg,CC,$<)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CPPFLAGS) $(INC) $(ALL_CFLAGS) -c $< -o $@

# Generated dispatch tables: one line per discovered command or suite.
$(BUILD)/gen/ctl_cmds.h: $(wildcard clients/shieldctl/ctl_*.c) Makefile
	@mkdir -p $(dir $@)
	$(Q)printf '%s\n' $(foreach c,$(CTL_CMDS),'SG_CTL_CMD($(c))') > $@.tmp && mv $@.tmp $@
$(BUILD)/gen/suites.h: $(TEST_SRC) Makefile
	@mkdir -p $(dir $@)
	$(Q)printf '%s\n' $(foreach s,$(TEST_SUITES),'SG_SUITE($(s))') > $@.tmp && mv $@.tmp $@

$(LIB_ENGINE): $(call obj,$(ENGINE_SRC))
$(LIB_POLICY): $(call obj,$(POLICY_SRC))
$(LIB_DAEMON): $(call obj,$(DAEMON_SRC))
$(LIB_CLIENT): $(call obj,$(CLIENT_SRC))
$(BUILD)/lib%.a:
	$(call msg,AR,$@)
	@mkdir -p $(dir $@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(SHIELDD): $(call obj,daemon/main.c) $(LIB_DAEMON) $(LIB_CLIENT) $(CORE_LIBS)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

$(SHIELDCTL): $(call obj,$(CTL_SRC)) $(LIB_CLIENT) $(CORE_LIBS)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/tools/%: $(BUILD)/obj/tools/%.o $(CORE_LIBS)
	$(call msg,LINK,$@)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

$(CHECK_BIN): $(call obj,$(TEST_SRC) $(TESTLIB_SRC)) $(LIB_DAEMON) $(LIB_CLIENT) $(CORE_LIBS)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS) $(CHECK_LIBS)

# test: unit suites (Check, fork mode), every fuzz target over its seeds (fuzz-seeds), the
# integration tests against the real binaries, then a 60 s soak (SOAK_CI_SECONDS).
# A plain build also builds an ASan+UBSan shieldd in $(BUILD)/asan (the `make asan` folder) for
# the daemon load test, whose exit status then covers leaks (tests/integration/test_daemon.py).
LOAD_SHIELDD = $(if $(SANITIZE),$(SHIELDD),$(BUILD)/asan/shieldd)
test check: setup
	$(Q)$(MAKE) --no-print-directory all
	$(if $(SANITIZE),,$(Q)$(MAKE) --no-print-directory BUILD=$(BUILD)/asan \
	    SANITIZE=address,undefined $(LOAD_SHIELDD))
	$(Q)SG_TOP=$(CURDIR) SG_BUILD=$(CURDIR)/$(BUILD) ./$(CHECK_BIN)
	$(Q)$(MAKE) --no-print-directory NO_SETUP=1 fuzz-seeds
	$(Q)SG_TOP=$(CURDIR) SG_BUILD=$(CURDIR)/$(BUILD) SG_LOAD_SHIELDD=$(CURDIR)/$(LOAD_SHIELDD) \
	    PYTHON=$(PYTHON) sh tests/integration/run.sh
	$(Q)$(PYTHON) tools/soak.py --seconds $(SOAK_CI_SECONDS) --build $(CURDIR)/$(BUILD)

# soak: the daemon under a mixed load for SOAK_SECONDS, checked for growth (docs/RELIABILITY.md)
soak: setup
	$(Q)$(MAKE) --no-print-directory NO_SETUP=1 all
	$(Q)$(PYTHON) tools/soak.py --seconds $(SOAK_SECONDS) --build $(CURDIR)/$(BUILD)

# asan: the whole test suite under AddressSanitizer and UBSan, in its own build folder
asan:
	$(Q)$(MAKE) --no-print-directory BUILD=build/asan SANITIZE=address,undefined test

# valgrind: the unit suites under valgrind (no fork, so leaks are attributed; tests/valgrind.supp
# says why each suppression is not a shieldd bug)
valgrind: all
	$(Q)CK_FORK=no SG_TOP=$(CURDIR) SG_BUILD=$(CURDIR)/$(BUILD) valgrind --error-exitcode=1 \
	    --leak-check=full --errors-for-leak-kinds=definite --suppressions=tests/valgrind.supp \
	    ./$(CHECK_BIN)

# demo-model: generate the deterministic random demo model with the real Gemma tokenizer
demo-model: setup all
	$(Q)BUILD=$(BUILD) sh tools/demo-model.sh

# run: set up, build, start shieldd in the foreground on the demo model
run: setup
	$(Q)$(MAKE) --no-print-directory all demo-model NO_SETUP=1
	$(Q)mkdir -p run
	./$(SHIELDD) -d --model .cache/demo-model --policies policies \
	    --listen unix:run/shieldd.sock --listen tcp:127.0.0.1:8088

# bench: prefill, classification, tokenizer and load benchmarks (figures in docs/BENCHMARKS.md)
bench: setup
	$(Q)$(MAKE) --no-print-directory all demo-model NO_SETUP=1
	$(Q)sh tools/bench.sh

# bench-compare: shieldd against the user's llama.cpp build on the same GGUF files
# (LLAMA_CPP_BIN=DIR holds llama-bench, llama-server, llama-quantize; docs/BENCHMARKS.md)
bench-compare: setup
	$(if $(LLAMA_CPP_BIN),,$(error bench-compare: set LLAMA_CPP_BIN=DIR, the folder of llama.cpp's llama-bench, llama-server and llama-quantize))
	$(Q)$(MAKE) --no-print-directory all NO_SETUP=1
	$(Q)$(PYTHON) tools/bench_compare.py --llama-bin "$(LLAMA_CPP_BIN)" --build $(BUILD) $(BENCH_COMPARE_ARGS)

# Fuzzing (docs/FUZZING.md). The engine and policy sources (ENGINE_SRC, POLICY_SRC: wherever
# they live) are built once with clang into $(BUILD)/fuzz/libfuzzcore.a; each target is its own
# file and links it. fuzz-seeds (part of `make test`) builds every target and replays its seed
# corpus once (-runs=0), so a target that no longer builds or crashes on a seed fails the tests.
FUZZ_CC      ?= clang
FUZZ_SAN      = -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_LIB_CFLAGS = -std=c11 -O1 -g -fsanitize=fuzzer-no-link $(FUZZ_SAN) $(PKG_CFLAGS) -pthread
FUZZ_CFLAGS   = -std=c11 -O1 -g -fsanitize=fuzzer $(FUZZ_SAN) $(PKG_CFLAGS) -pthread
FUZZ_CORE     = $(BUILD)/fuzz/libfuzzcore.a
# Fuzz objects see every engine folder (the normal build enforces the layering).
FUZZ_INC      = -Iengine/include $(ENGINE_ALL_INC) -Ipolicies -Idaemon -Iclients/lib
FUZZ_DAEMON   = $(BUILD)/fuzz/libfuzzdaemon.a
FUZZ_BINS     = $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRC))
HAVE_FUZZ_CC := $(shell command -v $(FUZZ_CC) >/dev/null 2>&1 && echo 1)

$(BUILD)/fuzz/obj/%.o: %.c | $(GEN)
	$(call msg,FUZZCC,$<)
	@mkdir -p $(dir $@)
	$(Q)$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_INC) -DSG_FUZZING=1 $(FUZZ_LIB_CFLAGS) -c $< -o $@
$(FUZZ_CORE): $(patsubst %.c,$(BUILD)/fuzz/obj/%.o,$(ENGINE_SRC) $(POLICY_SRC))
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^
$(FUZZ_DAEMON): $(patsubst %.c,$(BUILD)/fuzz/obj/%.o,$(DAEMON_SRC) $(CLIENT_SRC))
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^
# fuzz_api links the daemon's modules whole, its sg_moderate() wrapped by a stub.
$(BUILD)/fuzz/fuzz_api: $(FUZZ_DAEMON)
$(BUILD)/fuzz/fuzz_api: FUZZ_EXTRA = $(FUZZ_DAEMON) -Wl,--wrap=sg_moderate \
    -Wl,--wrap=sg_moderator_errmsg
$(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_CORE)
	$(call msg,FUZZLD,$@)
	@mkdir -p $(BUILD)/fuzz/obj
	$(Q)$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_INC) -MF $(BUILD)/fuzz/obj/fuzz_$*.d -MT $@ -DSG_FUZZING=1 \
	    $(FUZZ_CFLAGS) -o $@ $< $(FUZZ_EXTRA) $(FUZZ_CORE) $(LIBS)

fuzz-bins: $(FUZZ_BINS)

# fuzz-seeds: build every fuzz target and run it once over its seeds (skipped without clang)
fuzz-seeds:
ifeq ($(HAVE_FUZZ_CC),1)
	$(Q)$(MAKE) --no-print-directory fuzz-bins
	$(Q)for b in $(FUZZ_BINS); do \
	    n=$$(basename $$b); seeds=tests/fuzz/seeds/$$n; [ -d $$seeds ] || seeds=; \
	    $$b -runs=0 $$seeds >$(BUILD)/fuzz/$$n.seeds.log 2>&1 || \
	        { echo "  FUZZ   $$n: failed on its seeds"; tail -40 $(BUILD)/fuzz/$$n.seeds.log; exit 1; }; \
	done; echo "  FUZZ   $(words $(FUZZ_BINS)) targets built and replayed over their seeds"
else
	@echo "  FUZZ   skipped: $(FUZZ_CC) not found (tools/setup.sh installs clang)"
endif

# fuzz: build every target and run each FUZZ_SECONDS seconds (a corpus in $(BUILD)/fuzz)
fuzz: setup
	$(Q)$(MAKE) --no-print-directory NO_SETUP=1 fuzz-bins
	$(Q)for b in $(FUZZ_BINS); do \
	    n=$$(basename $$b); \
	    echo "  FUZZ   $$n ($(FUZZ_SECONDS)s)"; \
	    mkdir -p $(BUILD)/fuzz/corpus-$$n; \
	    seeds=tests/fuzz/seeds/$$n; [ -d $$seeds ] || seeds=; \
	    $$b -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	        $(BUILD)/fuzz/corpus-$$n $$seeds 2>$(BUILD)/fuzz/$$n.log || { tail -50 $(BUILD)/fuzz/$$n.log; exit 1; }; \
	    grep -E 'stat::number_of_executed_units|Done' $(BUILD)/fuzz/$$n.log | tail -2; \
	done

# install: binaries, policies, systemd units and the example config under DESTDIR/PREFIX
install: all
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/shieldd/policies
	install -m 755 $(SHIELDD) $(DESTDIR)$(PREFIX)/sbin/shieldd
	install -m 755 $(SHIELDCTL) $(DESTDIR)$(PREFIX)/bin/shieldctl
	install -m 644 policies/*.yaml $(DESTDIR)$(PREFIX)/share/shieldd/policies/
	if [ -d systemd ] && ls systemd/*.service >/dev/null 2>&1; then \
	    install -d $(DESTDIR)/etc/systemd/system $(DESTDIR)/etc/shieldd; \
	    install -m 644 systemd/shieldd.service systemd/shieldd.socket $(DESTDIR)/etc/systemd/system/; \
	    install -d $(DESTDIR)/usr/lib/sysusers.d; \
	    install -m 644 systemd/shieldd.sysusers $(DESTDIR)/usr/lib/sysusers.d/shieldd.conf; \
	    [ -n "$(DESTDIR)" ] || ! command -v systemd-sysusers >/dev/null || systemd-sysusers shieldd.conf; \
	    [ -f $(DESTDIR)/etc/shieldd/shieldd.yaml ] || install -m 644 systemd/shieldd.yaml $(DESTDIR)/etc/shieldd/shieldd.yaml; \
	fi

# fmt: format the C sources with the pinned .clang-format
fmt:
	clang-format -i $(wildcard engine/*/*.[ch] policies/*.[ch] daemon/*.[ch] clients/*/*.[ch] tests/*.[ch] tools/*.c)

# clean: remove build outputs (not the .cache of npm packages and generated models)
clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD)/obj $(BUILD)/fuzz/obj -name '*.d' 2>/dev/null)
