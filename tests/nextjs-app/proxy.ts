import { NextRequest, NextResponse } from 'next/server';

// Next 16's middleware (`proxy.ts`): a rewrite, a redirect, and a header it sets.
export function proxy(request: NextRequest) {
  const { pathname } = request.nextUrl;
  if (pathname === '/mw/rewrite') {
    const response = NextResponse.rewrite(new URL('/products/a', request.url));
    response.headers.set('x-fixture-mw', 'rewrite');
    return response;
  }
  if (pathname === '/mw/redirect') {
    return NextResponse.redirect(new URL('/products/b', request.url));
  }
  const response = NextResponse.next();
  response.headers.set('x-fixture-mw', 'next');
  return response;
}

export const config = { matcher: ['/mw/:path*', '/products/:path*'] };
