# The layers of ventral, bottom up, and the layers each may use (include and link):
#   core → datasets, models → inference → train → eval → study → cli
# ventral_layer(NAME) builds the static library ventral_NAME from the folder NAME/ and links the
# lower layers it uses. ventral_check_layers(ROOT) stops with the offending file and line when a
# source or header includes a header of a layer its folder may not use; the configure step runs
# it, and so does the test `Layers.*` (cmake -P cmake/check_layers.cmake).
set(VENTRAL_LAYERS core datasets models inference train eval study cli)
set(VENTRAL_USES_core core)
set(VENTRAL_USES_datasets core datasets)
set(VENTRAL_USES_models core models)
set(VENTRAL_USES_inference core datasets models inference)
set(VENTRAL_USES_train core datasets models inference train)
set(VENTRAL_USES_eval core datasets models inference eval)
set(VENTRAL_USES_study core datasets models inference train eval study)
set(VENTRAL_USES_cli ${VENTRAL_LAYERS})

function(ventral_layer name)
  add_library(ventral_${name} STATIC)
  if(NOT name STREQUAL "core")
    target_precompile_headers(ventral_${name} REUSE_FROM ventral_core)
  endif()
  foreach(dep ${VENTRAL_USES_${name}})
    if(NOT dep STREQUAL name)
      target_link_libraries(ventral_${name} PUBLIC ventral_${dep})
    endif()
  endforeach()
  add_subdirectory(${name})
endfunction()

function(ventral_check_layers root)
  foreach(layer ${VENTRAL_LAYERS})
    file(GLOB files ${root}/${layer}/*.cpp ${root}/${layer}/*.hpp)
    foreach(file ${files})
      file(STRINGS ${file} includes REGEX "^[ \t]*#[ \t]*include[ \t]*\"[a-z_]+/")
      foreach(line ${includes})
        string(REGEX REPLACE "^[ \t]*#[ \t]*include[ \t]*\"([a-z_]+)/.*" "\\1" used "${line}")
        list(FIND VENTRAL_LAYERS ${used} is_layer)
        list(FIND VENTRAL_USES_${layer} ${used} is_allowed)
        if(is_layer GREATER -1 AND is_allowed EQUAL -1)
          file(RELATIVE_PATH rel ${root} ${file})
          message(FATAL_ERROR "${rel}: '${line}' reaches the ${used} layer, which ${layer} may not use "
                              "(${layer} uses: ${VENTRAL_USES_${layer}}; see cmake/layers.cmake)")
        endif()
      endforeach()
    endforeach()
  endforeach()
endfunction()
