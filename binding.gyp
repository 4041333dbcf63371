# node-gyp fallback build of the git-tensor kernels addon, used by scripts/build-native.mjs when
# cmake-js cannot build native/CMakeLists.txt. Same CPU sources (test/native/sources.test.ts checks);
# gyp has no per-file flags, so each ISA file is its own static library with its -m flags.
# zstd is compiled from its sources (zstd-napi's copy, or vendor/zstd in a packed package), the files
# native/CMakeLists.txt globs (`node scripts/build-native.mjs --zstd-sources` lists them), as the
# static library git_tensor_zstd.
{
  'target_defaults': {
    'cflags_cc!': ['-fno-exceptions'],
    'cflags_cc': ['-std=c++17', '-ffp-contract=off', '-fno-strict-aliasing', '-fPIC'],
    'xcode_settings': {
      'GCC_ENABLE_CPP_EXCEPTIONS': 'YES',
      'CLANG_CXX_LANGUAGE_STANDARD': 'c++17',
      'MACOSX_DEPLOYMENT_TARGET': '10.15',
      'OTHER_CPLUSPLUSFLAGS': ['-ffp-contract=off'],
    },
  },
  'targets': [
    {
      'target_name': 'git_tensor',
      'sources': [
        'native/src/addon.cc',
        'native/src/chunks.cc',
        'native/src/codec.cc',
        'native/src/crc32.cc',
        'native/src/dispatch.cc',
        'native/src/io.cc',
        'native/src/ops.cc',
        'native/kernels/scalar.cc',
        'native/kernels/neon.cc',
      ],
      'dependencies': ['git_tensor_avx2', 'git_tensor_avx512', 'git_tensor_zstd'],
      'include_dirs': ["<!(node -p \"require('node-addon-api').include_dir\")"],
      'defines': ['NAPI_VERSION=8', 'NAPI_CPP_EXCEPTIONS'],
    },
    {
      'target_name': 'git_tensor_avx2',
      'type': 'static_library',
      'sources': ['native/kernels/avx2.cc'],
      'conditions': [
        ['target_arch=="x64"', {
          'cflags_cc': ['-mavx2', '-mfma', '-mf16c', '-mbmi', '-mbmi2', '-mpopcnt'],
          'xcode_settings': {'OTHER_CPLUSPLUSFLAGS': ['-mavx2', '-mfma', '-mf16c', '-mbmi', '-mbmi2', '-mpopcnt']},
        }],
      ],
    },
    {
      'target_name': 'git_tensor_avx512',
      'type': 'static_library',
      'sources': ['native/kernels/avx512.cc'],
      'conditions': [
        ['target_arch=="x64"', {
          'cflags_cc': ['-mavx2', '-mfma', '-mf16c', '-mbmi', '-mbmi2', '-mpopcnt',
                        '-mavx512f', '-mavx512bw', '-mavx512vl', '-mavx512dq'],
          'xcode_settings': {'OTHER_CPLUSPLUSFLAGS': ['-mavx2', '-mfma', '-mf16c', '-mbmi', '-mbmi2', '-mpopcnt',
                                                      '-mavx512f', '-mavx512bw', '-mavx512vl', '-mavx512dq']},
        }],
      ],
    },
    {
      'target_name': 'git_tensor_zstd',
      'type': 'static_library',
      'sources': ['<!@(node scripts/build-native.mjs --zstd-sources)'],
      'cflags': ['-fvisibility=hidden', '-fPIC'],
      'defines': ['XXH_NAMESPACE=ZSTD_', 'ZSTDLIB_VISIBLE=', 'ZSTDERRORLIB_VISIBLE=', 'ZSTD_NO_TRACE'],
      'xcode_settings': {'GCC_SYMBOLS_PRIVATE_EXTERN': 'YES'},
      'direct_dependent_settings': {
        'include_dirs': ['<!(node scripts/build-native.mjs --zstd-dir)'],
        'defines': ['GT_WITH_ZSTD', 'ZSTDLIB_VISIBLE=', 'ZSTDERRORLIB_VISIBLE='],
      },
    },
  ],
}
