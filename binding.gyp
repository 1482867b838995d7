{
  "variables": {
    # 1 only for the sanitizer build (scripts/build-native-sanitize.mjs), which
    # configures a separate build directory; the installed engine never sees it.
    "gpuvm_sanitize%": 0
  },
  "targets": [
    {
      "target_name": "gpuvm",
      "sources": [
        "native/addon.cc",
        "native/range_tree.cc",
        "native/gpuvm.cc",
        "native/page_table.cc",
        "native/page_table_addon.cc",
        "native/span_map.cc",
        "native/span_map_addon.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions", "-O2"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-O2"],
      "cflags_cc": ["-std=c++17", "-O3", "-fno-exceptions"],
      "xcode_settings": { "GCC_ENABLE_CPP_EXCEPTIONS": "NO", "CLANG_CXX_LANGUAGE_STANDARD": "c++17", "OTHER_CFLAGS": ["-O3"] },
      "msvs_settings": { "VCCLCompilerTool": { "ExceptionHandling": 0, "Optimization": 2 } },
      "conditions": [
        ["gpuvm_sanitize==1", {
          # appended after the release flags, so this -O1 is the one that counts
          "cflags_cc": ["-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined", "-fno-sanitize-recover=undefined"],
          "ldflags": ["-fsanitize=address,undefined"]
        }]
      ]
    }
  ]
}
