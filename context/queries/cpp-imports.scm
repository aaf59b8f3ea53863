; #include <header> and #include "header.hpp": the path without brackets or quotes. (C++20
; modules, `import std;`, are not in the grammar.)
(preproc_include path: (_) @import.include)
