// Lint configuration for Postern.
//
// Besides the type-aware rules (floating promises lose mail), this file holds
// the "room rule" from STYLE.md as a local rule: util knows no mail, global
// knows no daemon, and a daemon never imports another daemon's folder.
import path from "node:path";
import js from "@eslint/js";
import tseslint from "typescript-eslint";

const SRC = path.resolve("src");

// Which top-level folders under src/ a file in folder `from` may import.
// Tests beside the code may also use src/testing (fakes and builders).
function allowed(from, to) {
  if (from === to) return true;
  if (to === "util") return true;
  if (to === "global") return from !== "util";
  if (to === "master") return from !== "util" && from !== "global" && !from.startsWith("cli/");
  if (to === "testing") return from === "testing";
  return false;
}

// The room a file lives in: "util", "global", "master", "cli/<tool>", "testing" or a daemon name.
function roomOf(file) {
  const rel = path.relative(SRC, file);
  if (rel.startsWith("..")) return null;
  const parts = rel.split(path.sep);
  if (parts.length < 2) return null;
  if (parts[0] === "cli") return parts.length >= 3 ? `cli/${parts[1]}` : "cli";
  return parts[0];
}

const roomRule = {
  meta: {
    type: "problem",
    messages: { crossed: "{{from}} may not import from {{to}} (room rule, STYLE.md)" },
  },
  create(context) {
    const from = roomOf(context.filename);
    if (from === null) return {};
    const isTest = context.filename.endsWith(".test.ts");
    function check(node) {
      const spec = node.source && node.source.value;
      if (typeof spec !== "string" || !spec.startsWith(".")) return;
      const to = roomOf(path.resolve(path.dirname(context.filename), spec));
      if (to !== null && !allowed(from, to) && !(isTest && to === "testing")) {
        context.report({ node, messageId: "crossed", data: { from, to } });
      }
    }
    return {
      ImportDeclaration: check,
      ExportNamedDeclaration: check,
      ExportAllDeclaration: check,
      ImportExpression: check,
    };
  },
};

export default tseslint.config(
  { ignores: ["dist/**", "var/**", "node_modules/**", "bin/**", "scripts/**", "eslint.config.js"] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    plugins: { postern: { rules: { rooms: roomRule } } },
    rules: {
      "postern/rooms": "error",
      "@typescript-eslint/no-floating-promises": [
        "error",
        {
          allowForKnownSafeCalls: [
            { from: "package", name: ["test", "it", "describe", "suite"], package: "node:test" },
          ],
        },
      ],
      "@typescript-eslint/no-misused-promises": "error",
      "@typescript-eslint/no-explicit-any": "error",
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/restrict-template-expressions": [
        "error",
        { allowNumber: true, allowBoolean: true },
      ],
    },
  },
);
