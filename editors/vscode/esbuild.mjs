// Bundles the extension (and its test suite) into out/: one file each, `vscode` left external.
import * as esbuild from "esbuild";

const common = {
  bundle: true,
  platform: "node",
  format: "cjs",
  target: "node20",
  external: ["vscode"],
  sourcemap: false,
  logLevel: "warning",
};
await esbuild.build({ ...common, entryPoints: ["src/extension.ts"], outfile: "out/extension.js", minify: true });
await esbuild.build({ ...common, entryPoints: ["src/test/suite.ts"], outfile: "out/test/suite.js" });
