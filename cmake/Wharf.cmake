# Wharf.cmake: turns a CMake project's own install rules into a wharf package.
#
#   list(APPEND CMAKE_MODULE_PATH <folder of this file>)
#   include(Wharf)
#   wharf_package(NAME counter VERSION 1.0 PREFIX /opt/counter
#                 [STORE /srv/wharf | file:///srv/wharf | http://wharf:8080]
#                 [SERVICES services.toml] [OUTPUT_DIR dir] [WHARF /usr/bin/wharf])
#
# adds `wharf-pack` (NAME-VERSION.tar.zst and its package.json in OUTPUT_DIR, default
# <build>/wharf-out) and `wharf-publish`. docs/make-install.md has the details.
#
# The pack step runs this same file as a script (`cmake -P`), so an installed copy needs
# nothing beside it.

if(CMAKE_VERSION VERSION_LESS 3.19)
  message(FATAL_ERROR "Wharf.cmake needs CMake 3.19 or newer (this is ${CMAKE_VERSION})")
endif()
include_guard(GLOBAL)
set(_WHARF_MODULE_FILE "${CMAKE_CURRENT_LIST_FILE}")

# _wharf_store_args(STORE OUT): the `wharf publish` options that name STORE.
function(_wharf_store_args store out)
  if(store STREQUAL "")
    # wharf reads WHARF_STORE, or WHARF_SERVER and WHARF_TOKEN, when the target runs.
    set(${out} "" PARENT_SCOPE)
  elseif(store MATCHES "^https?://")
    # The token stays out of the build files: wharf takes it from WHARF_TOKEN at build time.
    set(${out} --server "${store}" PARENT_SCOPE)
  elseif(store MATCHES "^file://(.*)$")
    set(path "${CMAKE_MATCH_1}")
    if(NOT IS_ABSOLUTE "${path}")
      message(FATAL_ERROR "wharf_package: STORE ${store}: a file:// URL needs an absolute path, "
                          "e.g. file:///srv/wharf")
    endif()
    set(${out} --store "${path}" PARENT_SCOPE)
  elseif(IS_ABSOLUTE "${store}")
    set(${out} --store "${store}" PARENT_SCOPE)
  else()
    message(FATAL_ERROR "wharf_package: STORE \"${store}\" is neither an absolute folder nor a "
                        "file://, http:// or https:// URL; give e.g. /srv/wharf or http://wharf:8080")
  endif()
endfunction()

# _wharf_find_executable(GIVEN OUT): the wharf binary: GIVEN (the WHARF argument), else
# the cache variable WHARF_EXECUTABLE, else `wharf` on the PATH.
function(_wharf_find_executable given out)
  if(NOT given STREQUAL "")
    set(exe "${given}")
    set(origin "WHARF")
  else()
    find_program(WHARF_EXECUTABLE wharf DOC "the wharf binary that wharf-pack and wharf-publish run")
    set(exe "${WHARF_EXECUTABLE}")
    set(origin "WHARF_EXECUTABLE")
  endif()
  if(exe MATCHES "-NOTFOUND$" OR exe STREQUAL "")
    message(FATAL_ERROR "wharf_package: no `wharf` program on the PATH; install wharf, or pass "
                        "-DWHARF_EXECUTABLE=/path/to/wharf (or WHARF /path/to/wharf)")
  endif()
  if(NOT IS_ABSOLUTE "${exe}" OR IS_DIRECTORY "${exe}" OR NOT EXISTS "${exe}")
    message(FATAL_ERROR "wharf_package: ${origin}=${exe} is not an existing file; "
                        "give the absolute path of the wharf binary")
  endif()
  set(${out} "${exe}" PARENT_SCOPE)
endfunction()

# _wharf_add_all_dependencies(TARGET): TARGET depends on every target `all` builds, so
# that the install step finds everything built. (A target cannot depend on `all` itself,
# and a nested `cmake --build` would run a second build tool on the same tree.)
function(_wharf_add_all_dependencies target)
  set(pending "${CMAKE_SOURCE_DIR}")
  while(pending)
    list(POP_FRONT pending dir)
    get_property(excluded DIRECTORY "${dir}" PROPERTY EXCLUDE_FROM_ALL)
    if(excluded)
      continue()
    endif()
    get_property(targets DIRECTORY "${dir}" PROPERTY BUILDSYSTEM_TARGETS)
    foreach(t IN LISTS targets)
      get_target_property(type ${t} TYPE)
      get_target_property(skip ${t} EXCLUDE_FROM_ALL)
      if(NOT skip AND NOT type STREQUAL "INTERFACE_LIBRARY")
        add_dependencies(${target} ${t})
      endif()
    endforeach()
    get_property(subdirs DIRECTORY "${dir}" PROPERTY SUBDIRECTORIES)
    list(APPEND pending ${subdirs})
  endwhile()
endfunction()

# wharf_package(NAME n VERSION v PREFIX /abs [STORE s] [SERVICES f] [OUTPUT_DIR d] [WHARF w])
function(wharf_package)
  cmake_parse_arguments(PARSE_ARGV 0 ARG "" "NAME;VERSION;PREFIX;STORE;SERVICES;OUTPUT_DIR;WHARF" "")
  if(ARG_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "wharf_package: unknown arguments: ${ARG_UNPARSED_ARGUMENTS}")
  endif()
  foreach(required NAME VERSION PREFIX)
    if("${ARG_${required}}" STREQUAL "")
      message(FATAL_ERROR "wharf_package: ${required} is missing; call it as "
                          "wharf_package(NAME <name> VERSION <version> PREFIX </absolute/prefix>)")
    endif()
  endforeach()
  string(REGEX REPLACE "/+$" "" prefix "${ARG_PREFIX}")
  if(NOT IS_ABSOLUTE "${ARG_PREFIX}" OR prefix STREQUAL "")
    message(FATAL_ERROR "wharf_package: PREFIX \"${ARG_PREFIX}\" is not an absolute folder below /; "
                        "give where the package lives on the FEC, e.g. /opt/${ARG_NAME}")
  endif()
  if(TARGET wharf-pack)
    message(FATAL_ERROR "wharf_package: called twice; a build tree makes one package")
  endif()

  _wharf_store_args("${ARG_STORE}" store_args)
  _wharf_find_executable("${ARG_WHARF}" wharf)
  set(services "")
  if(NOT "${ARG_SERVICES}" STREQUAL "")
    get_filename_component(services "${ARG_SERVICES}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
    if(NOT EXISTS "${services}")
      message(FATAL_ERROR "wharf_package: SERVICES file ${services} does not exist")
    endif()
  endif()
  set(out "${CMAKE_BINARY_DIR}/wharf-out")
  if(NOT "${ARG_OUTPUT_DIR}" STREQUAL "")
    get_filename_component(out "${ARG_OUTPUT_DIR}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_BINARY_DIR}")
  endif()
  set(archive "${out}/${ARG_NAME}-${ARG_VERSION}.tar.zst")

  add_custom_target(wharf-pack
    COMMAND "${CMAKE_COMMAND}"
            "-DWHARF_EXECUTABLE=${wharf}"
            "-DWHARF_BINARY_DIR=${CMAKE_BINARY_DIR}"
            "-DWHARF_STAGE=${CMAKE_BINARY_DIR}/wharf-stage"
            "-DWHARF_CONFIG=$<CONFIG>"
            "-DWHARF_NAME=${ARG_NAME}"
            "-DWHARF_VERSION=${ARG_VERSION}"
            "-DWHARF_PREFIX=${prefix}"
            "-DWHARF_SERVICES=${services}"
            "-DWHARF_OUTPUT_DIR=${out}"
            -P "${_WHARF_MODULE_FILE}"
    BYPRODUCTS "${archive}" "${out}/${ARG_NAME}-${ARG_VERSION}.package.json"
    COMMENT "wharf: packing ${ARG_NAME} ${ARG_VERSION} for ${prefix}"
    VERBATIM)
  add_custom_target(wharf-publish
    COMMAND "${wharf}" publish "${archive}" ${store_args}
    COMMENT "wharf: publishing ${ARG_NAME} ${ARG_VERSION}"
    VERBATIM)
  add_dependencies(wharf-publish wharf-pack)
  # Deferred to the end of the top-level CMakeLists.txt, so that targets defined after
  # this call (or in later subdirectories) are built before the install too.
  cmake_language(DEFER DIRECTORY "${CMAKE_SOURCE_DIR}" CALL _wharf_add_all_dependencies wharf-pack)
endfunction()

# The wharf-pack step, run by `cmake -P` with the -D variables above.
function(_wharf_pack_step)
  set(root "${WHARF_STAGE}${WHARF_PREFIX}")
  # A fresh stage every time: files a previous build installed must never ship.
  file(REMOVE_RECURSE "${WHARF_STAGE}")
  set(config_args "")
  if(NOT WHARF_CONFIG STREQUAL "")
    set(config_args --config "${WHARF_CONFIG}")
  endif()
  set(ENV{DESTDIR} "${WHARF_STAGE}")
  execute_process(COMMAND "${CMAKE_COMMAND}" --install "${WHARF_BINARY_DIR}" --prefix "${WHARF_PREFIX}"
                          ${config_args}
                  RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "wharf-pack: `cmake --install` failed (${rc}); see its messages above")
  endif()
  # An absolute DESTINATION outside the prefix would be silently left out of the package.
  file(GLOB_RECURSE staged LIST_DIRECTORIES false RELATIVE "${WHARF_STAGE}" "${WHARF_STAGE}/*")
  set(outside "")
  foreach(path IN LISTS staged)
    string(FIND "/${path}" "${WHARF_PREFIX}/" at)
    if(NOT at EQUAL 0)
      list(APPEND outside "/${path}")
    endif()
  endforeach()
  if(outside)
    list(JOIN outside ", " outside)
    message(FATAL_ERROR "wharf-pack: installed outside PREFIX ${WHARF_PREFIX}, so not in the "
                        "package: ${outside}; make these install() DESTINATIONs relative")
  endif()

  if(NOT IS_DIRECTORY "${root}")
    message(FATAL_ERROR "wharf-pack: the install rules put nothing under ${WHARF_PREFIX}; "
                        "give install() relative DESTINATIONs (bin, etc, lib, ...)")
  endif()

  set(services_args)
  if(NOT WHARF_SERVICES STREQUAL "")
    set(services_args --services "${WHARF_SERVICES}")
  endif()

  file(MAKE_DIRECTORY "${WHARF_OUTPUT_DIR}")
  execute_process(COMMAND "${WHARF_EXECUTABLE}" pack "${root}" --name "${WHARF_NAME}"
                          --version "${WHARF_VERSION}" --prefix "${WHARF_PREFIX}"
                          --out "${WHARF_OUTPUT_DIR}" ${services_args}
                  RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "wharf-pack: `wharf pack` failed (${rc}); see its message above")
  endif()
endfunction()

if(CMAKE_SCRIPT_MODE_FILE STREQUAL CMAKE_CURRENT_LIST_FILE)
  _wharf_pack_step()
endif()
