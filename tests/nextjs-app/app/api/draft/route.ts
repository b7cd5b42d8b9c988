import { draftMode } from 'next/headers';

// Draft mode on (`GET`) or off (`GET ?off`): sets or clears the `__prerender_bypass` cookie.
export async function GET(request: Request) {
  const draft = await draftMode();
  if (new URL(request.url).searchParams.has('off')) {
    draft.disable();
    return new Response('draft off');
  }
  draft.enable();
  return new Response('draft on');
}
