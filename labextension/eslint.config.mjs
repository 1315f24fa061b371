// ESLint (flat config): typescript-eslint's recommended rules and React's rules of hooks; `npm run lint`
// runs it with `prettier --check` (formatting is prettier's, so no style rules here).
import js from '@eslint/js';
import reactHooks from 'eslint-plugin-react-hooks';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['lib/', 'node_modules/', 'src/documents.ts'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['src/**/*.{ts,tsx,js}'],
    plugins: { 'react-hooks': reactHooks },
    languageOptions: { globals: globals.browser },
    rules: {
      'react-hooks/rules-of-hooks': 'error',
      'react-hooks/exhaustive-deps': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', caughtErrors: 'none' }]
    }
  },
  {
    files: ['scripts/**/*.mjs', '*.config.{ts,mjs}', 'src/__tests__/*.js'],
    languageOptions: { globals: { ...globals.node, ...globals.browser } }
  }
);
