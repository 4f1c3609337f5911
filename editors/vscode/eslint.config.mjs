// @ts-check
import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["out/", "node_modules/", "*.vsix"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ["test/**/*.mjs", "eslint.config.mjs"],
    languageOptions: {
      // node globals, and `document` and `getComputedStyle` inside page.evaluate callbacks (they run in the browser)
      globals: {
        process: "readonly",
        console: "readonly",
        setTimeout: "readonly",
        URL: "readonly",
        document: "readonly",
        getComputedStyle: "readonly",
      },
    },
  },
);
