# wharf.mk: turns a Makefile project's own `install` rule into a wharf package.
#
#   WHARF_NAME     = counter
#   WHARF_VERSION  = 1.0
#   WHARF_PREFIX   = /opt/counter
#   WHARF_STORE    = /srv/wharf            # optional: folder, file:// or http(s):// URL
#   WHARF_SERVICES = services.toml         # optional
#   include /usr/share/wharf/make/wharf.mk
#
# adds `wharf-pack` and `wharf-publish`. The project's install rule must put everything
# under $(DESTDIR)$(PREFIX); `wharf-pack` runs it with DESTDIR set to a fresh staging
# folder and PREFIX=$(WHARF_PREFIX). docs/make-install.md has the details.

WHARF ?= wharf
WHARF_OUTPUT_DIR ?= $(CURDIR)/wharf-out
WHARF_STAGE ?= $(CURDIR)/wharf-stage
WHARF_INSTALL_TARGET ?= install
# The makefile that included this one, for the recursive install (it may not be named
# Makefile, or be run with -f).
WHARF_MAKEFILE := $(firstword $(MAKEFILE_LIST))

# The checks are expanded when a wharf target runs, not when the file is read, so a
# project's other targets work without the WHARF_ variables.
wharf_required = $(if $(strip $($(1))),,$(error $(1) is not set; wharf.mk needs WHARF_NAME, WHARF_VERSION \
  and WHARF_PREFIX (an absolute folder, e.g. /opt/myapp)))
wharf_check = $(foreach v,WHARF_NAME WHARF_VERSION WHARF_PREFIX,$(call wharf_required,$(v)))$(if \
  $(filter /%,$(WHARF_PREFIX)),,$(error WHARF_PREFIX "$(WHARF_PREFIX)" is not an absolute folder; \
  give where the package lives on the FEC, e.g. /opt/$(WHARF_NAME)))$(if \
  $(filter-out /,$(WHARF_PREFIX)),,$(error WHARF_PREFIX may not be /))$(if \
  $(WHARF_SERVICES),$(if $(wildcard $(WHARF_SERVICES)),,$(error WHARF_SERVICES file \
  $(WHARF_SERVICES) does not exist)))

wharf_prefix = $(patsubst %/,%,$(WHARF_PREFIX))
wharf_root = $(WHARF_STAGE)$(wharf_prefix)
wharf_archive = $(WHARF_OUTPUT_DIR)/$(WHARF_NAME)-$(WHARF_VERSION).tar.zst
# Empty WHARF_STORE: wharf reads WHARF_SERVER and WHARF_TOKEN from the environment. A
# server URL goes to --server (the token stays in WHARF_TOKEN), a file:// URL to --store.
wharf_store_args = $(if $(filter http://% https://%,$(WHARF_STORE)),--server '$(WHARF_STORE)',$(if \
  $(WHARF_STORE),--store '$(patsubst file://%,%,$(WHARF_STORE))'))

.PHONY: wharf-pack wharf-publish

wharf-pack:
	$(wharf_check)
	rm -rf '$(WHARF_STAGE)'
	$(MAKE) -f '$(WHARF_MAKEFILE)' $(WHARF_INSTALL_TARGET) DESTDIR='$(WHARF_STAGE)' PREFIX='$(wharf_prefix)'
	@test -d '$(wharf_root)' || { echo "wharf-pack: \`make $(WHARF_INSTALL_TARGET)\` put nothing under \
	$(wharf_prefix) in $(WHARF_STAGE): its rule must install into \$$(DESTDIR)\$$(PREFIX)" >&2; exit 1; }
	@outside=$$(find '$(WHARF_STAGE)' ! -type d ! -path '$(wharf_root)/*' | sed 's|^$(WHARF_STAGE)||'); \
	if [ -n "$$outside" ]; then echo "wharf-pack: installed outside WHARF_PREFIX $(wharf_prefix), so not" \
	  "in the package:" $$outside "; install into \$$(DESTDIR)\$$(PREFIX)/..." >&2; exit 1; fi
	mkdir -p '$(WHARF_OUTPUT_DIR)'
	$(WHARF) pack '$(wharf_root)' --name '$(WHARF_NAME)' --version '$(WHARF_VERSION)' \
	  --prefix '$(wharf_prefix)' --out '$(WHARF_OUTPUT_DIR)' \
	  $(if $(strip $(WHARF_SERVICES)),--services '$(WHARF_SERVICES)')

wharf-publish: wharf-pack
	$(WHARF) publish '$(wharf_archive)' $(wharf_store_args)
