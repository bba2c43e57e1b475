// The token lives in sessionStorage only, so it ends with the browser tab
// and is never written to disk by the console.
const TOKEN_KEY = "pulse-console-token";

export function loadToken(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function saveToken(token: string): void {
  sessionStorage.setItem(TOKEN_KEY, token);
}

export function clearToken(): void {
  sessionStorage.removeItem(TOKEN_KEY);
}
