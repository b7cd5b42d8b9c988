// The seed's route handler (shared/seeds/000), unchanged in behaviour for { secret, paths } (the
// backend, here the isr-edge proxy forwarding a revalidation, POSTs that), plus `tags`.
import { revalidatePath, revalidateTag } from 'next/cache';
import { NextRequest, NextResponse } from 'next/server';

export async function POST(request: NextRequest) {
  try {
    const body = await request.json();
    const { secret, paths, tags } = body;

    const revalidateSecret = process.env.REVALIDATE_SECRET;
    if (!revalidateSecret || secret !== revalidateSecret) {
      console.error('Invalid revalidation secret');
      return NextResponse.json({ success: false, message: 'Invalid secret' }, { status: 401 });
    }

    if (paths && Array.isArray(paths)) {
      for (const path of paths) {
        console.log(`Revalidating path: ${path}`);
        revalidatePath(path, 'page');
      }
    }

    // What an app whose pages use tagged data adds to the seed's route: the tags, expired at once.
    if (tags && Array.isArray(tags)) {
      for (const tag of tags) {
        console.log(`Revalidating tag: ${tag}`);
        revalidateTag(tag, { expire: 0 });
      }
    }

    return NextResponse.json({
      success: true,
      message: 'Revalidated successfully',
      revalidated: {
        paths: paths || [],
        timestamp: new Date().toISOString(),
      },
    });
  } catch (error) {
    console.error('Revalidation error:', error);
    return NextResponse.json(
      {
        success: false,
        message: 'Revalidation failed',
        error: error instanceof Error ? error.message : 'Unknown error',
      },
      { status: 500 }
    );
  }
}

export async function GET() {
  return NextResponse.json({
    status: 'ok',
    message: 'On-demand revalidation endpoint is ready',
    usage: 'POST with { secret, paths: ["/"] }',
  });
}
