SUMMARY = "wharf agent: a front-end computer's signed software generations and its services"
DESCRIPTION = "wharf-agent pulls this FEC's signed generation from a wharf store (http, https \
or a file:// folder such as a DVD), switches to it atomically, keeps the previous ones for a \
one-step rollback, and supervises the services it declares, each under its own process \
server (wharf-procserv)."
HOMEPAGE = "${WHARF_HOMEPAGE}"
SECTION = "admin"
# Set these to your site's copy of wharf and its licence (see README.md).
WHARF_HOMEPAGE ??= ""
LICENSE ??= "CLOSED"

# Where the sources come from: your site's wharf repository, or a checkout beside the
# build (EXTERNALSRC, README.md).
WHARF_SRC_URI ??= "git://git.example.org/controls/wharf.git;protocol=https;branch=main"
SRC_URI = "${WHARF_SRC_URI};destsuffix=wharf \
           file://agent.toml \
"
S = "${UNPACKDIR}/wharf"
SRCREV ??= "${AUTOREV}"
PV = "0.1.0+git"

# The agent's libraries (oe-core), and the header-only ones it is compiled with (meta-oe).
DEPENDS = "zstd libarchive curl openssl nlohmann-json cli11 tomlplusplus"

inherit cmake pkgconfig systemd useradd

# The wharf configuration scripts/cross-build uses, from the one file both read
# (tests/yocto_layer.sh checks it): only the FEC side, no unit tests. 32-bit machines get
# 64-bit time_t and off_t from oe-core's own flags (GLIBC_64BIT_TIME_FLAGS), as
# cross-build sets them.
EXTRA_OECMAKE = "-C ${S}/cmake/fec-agent.cmake"

# The console group: its members may list and control this FEC's services through sudo
# (the policy is in ${PN}-sudo).
USERADD_PACKAGES = "${PN}"
GROUPADD_PARAM:${PN} = "--system wharf"

SYSTEMD_SERVICE:${PN} = "wharf-agent.service"
SYSTEMD_AUTO_ENABLE:${PN} = "enable"

do_install:append() {
    # The units wharf-agent install-units would write, with this image's paths.
    install -d ${D}${systemd_system_unitdir}
    for unit in wharf-agent.service wharf-svc@.service; do
        sed -e 's|@WHARF_AGENT@|${bindir}/wharf-agent|g' \
            -e 's|@WHARF_PROCSERV@|${bindir}/wharf-procserv|g' \
            ${S}/packaging/systemd/$unit > ${D}${systemd_system_unitdir}/$unit
        chmod 0644 ${D}${systemd_system_unitdir}/$unit
    done
    install -d -m 0755 ${D}${sysconfdir}/wharf
    install -m 0644 ${UNPACKDIR}/agent.toml ${D}${sysconfdir}/wharf/agent.toml
    printf 'WHARF_ROOT=/\nWHARF_CONSOLE_GROUP=wharf\n' > ${D}${sysconfdir}/wharf/agent.env
    chmod 0644 ${D}${sysconfdir}/wharf/agent.env
    # The sudo policy for the wharf group, naming this image's wharf-agent.
    install -d -m 0750 ${D}${sysconfdir}/sudoers.d
    sed -e 's|/usr/local/bin/wharf-agent|${bindir}/wharf-agent|g' \
        ${S}/packaging/sudoers.d/wharf > ${D}${sysconfdir}/sudoers.d/wharf
    chmod 0440 ${D}${sysconfdir}/sudoers.d/wharf
    # The shared files cmake --install adds for projects that publish with wharf are the
    # build host's business, not the FEC's.
    rm -rf ${D}${datadir}/wharf
}

PACKAGES =+ "${PN}-sudo"
FILES:${PN} += "${systemd_system_unitdir}/wharf-svc@.service"
FILES:${PN}-sudo = "${sysconfdir}/sudoers.d/wharf"
RDEPENDS:${PN}-sudo = "${PN} sudo"
CONFFILES:${PN} = "${sysconfdir}/wharf/agent.toml ${sysconfdir}/wharf/agent.env"
# Names in archives are converted through the C.UTF-8 locale (docs/embedded.md); the
# image installs it as IMAGE_LINGUAS "c" (in oe-core's default for glibc).
RRECOMMENDS:${PN} = "ca-certificates locale-base-c"
