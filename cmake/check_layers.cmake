# cmake -DVENTRAL_ROOT=DIR -P cmake/check_layers.cmake: the layer check on the tree at DIR.
include(${CMAKE_CURRENT_LIST_DIR}/layers.cmake)
ventral_check_layers(${VENTRAL_ROOT})
