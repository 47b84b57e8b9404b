SUMMARY = "wharf on a FEC: the agent, its process server and units, the console group's sudo policy"
# Add to an image with IMAGE_INSTALL:append = " packagegroup-wharf-fec" (README.md).
inherit packagegroup

RDEPENDS:${PN} = "wharf-agent wharf-agent-sudo ca-certificates"
